// Package pki makes and reads the TLS certificates of a commune that has no
// certificate authority of its own: `loa pki init` creates a small CA (ECDSA
// P-256, 10 years) and the controller's server certificate (2 years, the
// given DNS names and IP addresses plus localhost, 127.0.0.1 and ::1 as
// subject alternative names), and `loa pki box ID` a client certificate for
// a box (5 years) for a broker that requires them.
//
// Files, all PEM, in one folder: ca.crt, ca.key, server.crt (the server
// certificate followed by the CA's, so the controller finds the CA to hand to
// boxes), server.key, box-<id>.crt, box-<id>.key. Keys are PKCS #8 with mode
// 0600, written to a temporary file and renamed; nothing existing is
// overwritten unless asked (Options.Force), and a refused call writes nothing.
//
// Every certificate is valid from NotBefore (2025-01-01) or earlier: a box
// whose clock is not plausible yet (a Raspberry Pi that booted in 1970)
// checks certificates at its earliest plausible time, which is never before
// that, so it can still reach the controller and learn the time from it.
//
// The package also builds the few tls.Configs Loa needs (Pinned,
// EphemeralClient, PoolFromPEM). It has no state; everything is safe for
// concurrent use.
package pki
