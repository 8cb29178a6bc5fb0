// Package cap reads OASIS Common Alerting Protocol 1.2 alerts
// (urn:oasis:names:tc:emergency:cap:1.2) and decides what Loa does with
// them: start an emergency, replace one, cancel one, or ignore the alert.
//
// Parse decodes and validates one <alert> document from outside input: it
// reads at most MaxSize bytes, refuses DOCTYPE and other declarations, and
// checks required elements, enumerations, date-times, references, geometry
// and embedded resources. Its errors wrap ErrInvalid and name the element at
// fault ("cap: info[0].severity: ..."), so an HTTP handler can answer 4xx
// with err.Error() as the reason. Marshal writes an Alert back as CAP XML.
//
// Decide maps a parsed alert to a Decision using a Config (the controller's
// "cap" settings): which info block to use by language, severity and urgency
// thresholds, which loudspeaker groups each area means, how Exercise and
// Test alerts are treated, which tone to sound, and the audio or text to
// play. Expired alerts are refused with ErrExpired.
//
// The package does no I/O beyond reading the given reader, keeps no state
// and never reads the clock (Decide takes now), so it is safe for concurrent
// use and for fuzzing. An Alert is a plain value: do not change one while
// another goroutine reads it.
package cap
