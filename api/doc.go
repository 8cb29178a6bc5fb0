// Package api is the controller's HTTP API (JSON under /v1) and the Go client
// the staff CLI uses. Handlers validate input, call the store, the media
// store and the broadcaster, and answer errors as {"error": text, "code": key}
// with the messages package's keys.
//
// Staff calls need the admin token (Authorization: Bearer). Media downloads
// also accept a box's own credentials (HTTP Basic: device id and token).
// A Server is safe for concurrent use; it starts no goroutines of its own.
package api
