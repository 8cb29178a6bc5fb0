// Package broadcaster is the controller service of one site: it runs the
// embedded MQTT broker (or connects to an external one), turns the rules in
// the store into retained plans per target and publishes them whenever they
// change or the horizon moves, publishes each box's config, and ingests what
// the boxes answer (state, events, time-sync requests) into the store.
//
// A Service owns its goroutines: Open starts the broker, the MQTT session and
// the planning loop; Close stops them and waits. Replan and PublishConfigs
// are safe to call from any goroutine (the HTTP handlers do).
package broadcaster
