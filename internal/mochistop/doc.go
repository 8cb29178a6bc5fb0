// Package mochistop lets an embedded mochi MQTT server stop cleanly: a TCP
// listener that owns the connections it accepts, and a Close that avoids
// the deadlock in mochi's own shutdown path (mochi-mqtt/server#488).
package mochistop
