// Package api is the controller's HTTP API (JSON under /v1) and the Go client
// the staff CLI uses. Handlers validate input, call the store, the media
// store and the broadcaster, and answer errors as {"error": text, "code": key}
// with the messages package's keys.
//
// Staff calls need a token (Authorization: Bearer): the bootstrap admin
// token, or a stored staff token whose role allows the route (NewServer lists
// every route with the least role it needs; 401 for a missing, unknown,
// expired or revoked token, 403 for a role too low). Every mutating request
// a known token makes (refused ones too) is written to the audit log under
// the token's name. Media downloads also accept a box's own credentials
// (HTTP Basic: device id and token).
// A Server is safe for concurrent use; it starts no goroutines of its own.
package api
