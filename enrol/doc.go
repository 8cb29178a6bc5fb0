// Package enrol lets a new loudspeaker box fetch its configuration from the
// controller with a one-time code, so that no file with a secret is copied
// by hand. The code holds a secret (72 bits) and the fingerprint of the
// controller's signing key (72 bits), with a check against typos. The box
// sends a fresh X25519 key authenticated with the secret; the controller
// answers with the configuration sealed to that key and signed with its
// own, which the box checks against the fingerprint. The controller keeps
// only a key derived from the secret, spends the code on first use, and
// lets it expire.
package enrol
