// Package auth makes and checks the controller's secrets: the bootstrap admin
// token staff use (the admin.token file), the staff API tokens with a role
// (see Role), each box's own token (its MQTT password and media credential),
// and the controller's own broker credential.
//
// Roles: admin ⊇ operator ⊇ viewer, and trigger apart (alerts from outside
// only); Role.Allows decides. The bootstrap admin token has role admin and
// goes by AdminTokenName.
//
// Only SHA-256 hashes of tokens are stored; tokens are 32 random bytes, so a
// plain hash is enough (no password stretching needed). Comparisons are
// constant-time. Everything here is safe for concurrent use.
package auth
