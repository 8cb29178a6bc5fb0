// Package messages is the one place for what Loa says to people: errors and
// notices shown by the CLI and returned by the HTTP API. Each message has a
// key and an English text; a translation (Vietnamese first) is a second
// table with the same keys, chosen by the LOA_LANG environment variable.
//
// The tables are read-only after init, so it is safe for concurrent use.
package messages
