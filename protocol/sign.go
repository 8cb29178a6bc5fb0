package protocol

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Signed messages: everything the controller tells boxes (plans, configs,
// time answers) carries ed25519 signatures over the topic it was published
// on, the kind, site, issue time, sequence and the exact body bytes, so a
// message cannot be forged, moved to another box's topic or altered, even
// by someone holding broker credentials or the broker itself. During a key
// rotation the controller signs with both keys; a box accepts a message
// signed by any key it trusts.

// ErrForged wraps every signature failure: unsigned, signed by no trusted
// key, or not matching its content.
var ErrForged = errors.New("not signed by the controller")

// PublicKeyPrefix starts a public key in its text form.
const PublicKeyPrefix = "ed25519:"

// Signature is one key's signature of an envelope.
type Signature struct {
	Key string `json:"key"` // KeyID of the signing key
	Sig []byte `json:"sig"`
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// FormatPublicKey writes pub as "ed25519:<base64>".
func FormatPublicKey(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads a key written by FormatPublicKey.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), PublicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("public key %q does not start with %q", short(s), PublicKeyPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q is not a base64 ed25519 key", short(s))
	}
	return ed25519.PublicKey(b), nil
}

func short(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// Signer signs envelopes with one private key.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a signer for key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}
}

// Public is the signer's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// KeyID is the ID of the signer's public key.
func (s *Signer) KeyID() string { return s.id }

// Keyring is the set of public keys a box trusts, by KeyID.
type Keyring map[string]ed25519.PublicKey

// NewKeyring parses keys in their text form.
func NewKeyring(keys ...string) (Keyring, error) {
	k := Keyring{}
	for _, s := range keys {
		pub, err := ParsePublicKey(s)
		if err != nil {
			return nil, err
		}
		k[KeyID(pub)] = pub
	}
	return k, nil
}

// signedBytes is what a signature covers. Every field is length-prefixed,
// so no two messages share it.
func signedBytes(topic string, e Envelope) []byte {
	var b []byte
	for _, f := range []string{"loa-envelope-v1", topic, string(e.Kind), e.Site, e.Issued.UTC().Format(time.RFC3339Nano), strconv.FormatUint(e.Seq, 10), string(e.Body)} {
		b = strconv.AppendInt(b, int64(len(f)), 10)
		b = append(b, ':')
		b = append(b, f...)
	}
	return b
}

// EncodeSigned is Encode for topic, signed by every signer (none: unsigned).
func EncodeSigned(topic string, kind Kind, site string, seq uint64, issued time.Time, body any, signers ...*Signer) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s body: %w", kind, err)
	}
	e := Envelope{V: Version, Kind: kind, Site: site, Issued: issued.UTC(), Seq: seq, Body: b}
	msg := signedBytes(topic, e)
	for _, s := range signers {
		e.Sigs = append(e.Sigs, Signature{Key: s.id, Sig: ed25519.Sign(s.key, msg)})
	}
	return json.Marshal(e)
}

// maxSignatures bounds the work an envelope can ask of a verifier.
const maxSignatures = 4

// Verify checks that e, received on topic, carries a valid signature by a
// key in keys. It returns the ID of the key that signed it.
func Verify(topic string, e Envelope, keys Keyring) (string, error) {
	switch {
	case len(e.Sigs) == 0:
		return "", fmt.Errorf("%w: unsigned", ErrForged)
	case len(e.Sigs) > maxSignatures:
		return "", fmt.Errorf("%w: %d signatures, at most %d", ErrForged, len(e.Sigs), maxSignatures)
	}
	msg := signedBytes(topic, e)
	known := false
	for _, s := range e.Sigs {
		pub, ok := keys[s.Key]
		if !ok {
			continue
		}
		known = true
		if len(s.Sig) == ed25519.SignatureSize && ed25519.Verify(pub, msg, s.Sig) {
			return s.Key, nil
		}
	}
	if !known {
		return "", fmt.Errorf("%w: signed by no trusted key", ErrForged)
	}
	return "", fmt.Errorf("%w: bad signature (altered, or meant for another topic)", ErrForged)
}

// DecodeSigned is Decode for a message received on topic that must be
// signed by a key in keys.
func DecodeSigned(data []byte, topic, site string, want Kind, keys Keyring, v any) (Envelope, error) {
	e, err := DecodeEnvelope(data, site, want)
	if err != nil {
		return e, err
	}
	if _, err := Verify(topic, e, keys); err != nil {
		return e, err
	}
	return e, decodeBody(e, want, v)
}

// SignFor signs msg for a purpose named by domain, outside any topic: the
// domain (which must not start with "loa/", as topics do) is signed with
// the message, so such a signature never passes for a message's.
func (s *Signer) SignFor(domain string, msg []byte) []byte {
	return ed25519.Sign(s.key, domainBytes(domain, msg))
}

// VerifyFor checks a signature made by SignFor.
func VerifyFor(pub ed25519.PublicKey, domain string, msg, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize &&
		ed25519.Verify(pub, domainBytes(domain, msg), sig)
}

func domainBytes(domain string, msg []byte) []byte {
	if strings.HasPrefix(domain, "loa/") {
		panic("protocol: a signing domain must not look like a topic: " + domain)
	}
	return append(append([]byte(domain), 0), msg...)
}
