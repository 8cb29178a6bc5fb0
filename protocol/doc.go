// Package protocol defines what the controller and the loudspeaker boxes say to
// each other over MQTT: topic names, the JSON envelope every payload travels in,
// and the message bodies (plans, device config, state, events, time sync).
//
// It does no I/O and holds no state, so both sides (and fuzzers) can use it
// freely from any goroutine. Decoders reject what they cannot trust with an
// error that says why; callers log it and carry on.
package protocol
