package enrol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"strings"
)

// Sizes of a code's parts, in bytes: 9 + 9 + 2 = 20 bytes, 32 characters.
const (
	secretSize      = 9 // 72 bits: never guessed, with the API's rate limits
	fingerprintSize = 9 // 72 bits of the SHA-256 of the controller's key
	checkSize       = 2 // catches a typo on the box, before the code is spent
)

// alphabet is Crockford's base32: no I, L, O or U, so nothing reads as
// another character.
var alphabet = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// Code is a one-time enrolment code: a secret that lets one box fetch its
// configuration once, and the fingerprint of the controller's signing key,
// so that the box trusts the controller it talks to without any file.
type Code struct {
	Secret      [secretSize]byte
	Fingerprint [fingerprintSize]byte
}

// ErrBadCode: the text is not a code, or has a typo.
var ErrBadCode = errors.New("not a valid enrolment code: check it character by character (32 letters and digits, dashes optional)")

// NewCode makes a code for the controller whose signing key is key.
func NewCode(key ed25519.PublicKey) Code {
	var c Code
	rand.Read(c.Secret[:])
	c.Fingerprint = Fingerprint(key)
	return c
}

// Fingerprint is the first bytes of the SHA-256 of a public key.
func Fingerprint(key ed25519.PublicKey) [fingerprintSize]byte {
	sum := sha256.Sum256(key)
	var f [fingerprintSize]byte
	copy(f[:], sum[:])
	return f
}

// String writes the code in eight groups of four characters.
func (c Code) String() string {
	s := alphabet.EncodeToString(c.bytes())
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

func (c Code) bytes() []byte {
	b := append(append([]byte{}, c.Secret[:]...), c.Fingerprint[:]...)
	return append(b, check(b)...)
}

func check(b []byte) []byte {
	sum := sha256.Sum256(append([]byte("loa-enrol code"), b...))
	return sum[:checkSize]
}

// ParseCode reads a code as a person typed it: any case, with or without
// dashes and spaces, O for 0 and I or L for 1.
func ParseCode(s string) (Code, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ', '\t':
			return -1
		case 'o', 'O':
			return '0'
		case 'i', 'I', 'l', 'L':
			return '1'
		}
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
	const size = secretSize + fingerprintSize + checkSize
	b, err := alphabet.DecodeString(s)
	if err != nil || len(s) != alphabet.EncodedLen(size) || len(b) != size {
		return Code{}, ErrBadCode
	}
	body := b[:secretSize+fingerprintSize]
	if !bytes.Equal(check(body), b[len(body):]) {
		return Code{}, ErrBadCode
	}
	var c Code
	copy(c.Secret[:], body)
	copy(c.Fingerprint[:], body[secretSize:])
	return c, nil
}

// MACKey is what the controller keeps of the code: the key a box's request
// is authenticated with, derived from the secret (the secret itself is
// shown once and never stored).
func (c Code) MACKey() []byte {
	sum := sha256.Sum256(append([]byte("loa-enrol mac key"), c.Secret[:]...))
	return sum[:]
}
