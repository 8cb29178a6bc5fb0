// Package controller assembles `loa serve`: its configuration (defaults, a
// YAML file, LOA_* environment variables, then flags, and Validate), the
// SQLite store, the media store, the broadcaster (MQTT) and the HTTP API.
//
// A Controller owns everything it opens: Open starts the broker, the MQTT
// session, the planning loop and the HTTP server; Close stops them in reverse
// order and waits for each.
package controller
