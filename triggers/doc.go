// Package triggers turns sensor readings into emergency decisions: a river
// gauge publishes its water level to loa/<site>/trigger/<source>, and a
// configured Rule says when that level starts an emergency, when it clears,
// and what to broadcast where.
//
// The package is pure logic and decoding: no MQTT, no database, no clock of
// its own. The controller subscribes to the trigger topics, decodes each
// payload with DecodeReading, passes it with the current time to
// Engine.Observe, calls Engine.Tick now and then, and acts on the Decisions
// it gets back (start or cancel an emergency, write the audit log).
//
// # Readings
//
// A sensor publishes a JSON object whose values are numbers (true and false
// count as 1 and 0, for float switches and contacts):
//
//	{"at": "2025-10-28T03:15:00Z", "values": {"water_level_cm": 412.5, "rain_mm_h": 30}}
//
// "at" (RFC 3339, the sensor's own clock) is optional. A device that can
// build Loa envelopes sends the same object as the body of an envelope of
// kind "trigger" for the site; a payload with a top-level "v", "kind" or
// "body" member is taken to be an envelope and checked as one, anything else
// as a bare reading (the topic then tells the site and source). Payloads are
// at most MaxReadingSize bytes with at most MaxValues values; value names
// follow protocol.ValidName; NaN, infinities and null are refused. Every
// decoding error wraps protocol.ErrBadMessage.
//
// # Rules
//
// A rule watches one field of one source. With Above, it fires when the
// value is strictly above the threshold and clears only when the value falls
// strictly below Above−Hysteresis; Below is the mirror image. Between the
// two lines nothing changes, so a value that flaps around the threshold
// starts one emergency, not a storm of them.
//
// For (debounce) asks that the condition hold for that long: the rule fires
// on the first reading at least For after the first reading that met the
// condition, provided every reading in between met it too. For is judged on
// readings only, never on Tick: a single spike followed by silence proves
// nothing, so a gauge should report periodically, not only on change.
//
// Cooldown is the least time between two starts of a rule, and the least
// time between a clear and the next start. A condition met during the
// cooldown starts nothing (one Suppressed notice per cooldown says so); the
// first reading after the cooldown that still meets it starts the rule
// again. Validate insists on a cooldown of at least MinCooldown.
//
// When the value clears, a rule with CancelOnClear yields a Cancel for the
// emergency it started; without it, a Clear notice, and the emergency runs on
// until staff cancel it.
//
// StaleAfter: when a rule's field has not been read for that long, Tick
// yields one Stale notice; the rule keeps its state (an active emergency is
// not cancelled for lack of news), and the next reading yields a Resume
// notice. A reading whose own "at" is more than StaleAfter before now (a
// queue flushed after an outage) is ignored, so yesterday's flood does not
// start an emergency today.
//
// # Time
//
// The engine has no clock: every method takes now. Pass time.Now(); its
// monotonic reading keeps cooldowns right across wall-clock steps. Elapsed
// times never count as negative, so a clock stepped back makes a cooldown
// last at most its own length longer. The sensor's "at" is used only to
// drop late readings, never to time the rules, as cheap gauges keep poor
// time.
//
// # Concurrency
//
// An Engine is safe for concurrent use: one mutex guards all rule state, and
// the rules themselves are copied and never change after NewEngine. The
// Decisions returned belong to the caller. DecodeReading holds no state.
package triggers
