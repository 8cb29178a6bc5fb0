// Package loadtest measures Loa at the scale of a district: it registers
// many simulated boxes with a controller, connects each as a real MQTT
// session that follows its plans and answers back (without audio), sends
// announcements or emergencies, and measures how long every box takes to
// get them.
//
// Run owns every goroutine and MQTT session it starts and closes them all
// before it returns.
package loadtest
