// Package auth makes and checks the controller's secrets: the admin token
// staff use, each box's own token (its MQTT password and media credential),
// and the controller's own broker credential.
//
// Only SHA-256 hashes of tokens are stored; tokens are 32 random bytes, so a
// plain hash is enough (no password stretching needed). Comparisons are
// constant-time. Everything here is safe for concurrent use.
package auth
