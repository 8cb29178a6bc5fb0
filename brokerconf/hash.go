package brokerconf

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mosquitto's "$7$" password hash: PBKDF2 with HMAC-SHA512 over a 12-byte
// random salt, 101 iterations and a 64-byte key by default, written as
// $7$<iterations>$<base64 salt>$<base64 key> (standard base64 with padding),
// exactly as mosquitto_passwd 2.x writes it.
const (
	HashIterations = 101
	saltLen        = 12
	keyLen         = sha512.Size
	maxIterations  = 1 << 17 // the most Verify accepts, so a bad line cannot stall it
)

// ErrBadHash is returned by Verify for a hash it cannot read.
var ErrBadHash = errors.New("not a mosquitto password hash")

// MosquittoHash returns a mosquitto password-file hash of password with a
// fresh random salt.
func MosquittoHash(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	return hash7(password, salt, HashIterations)
}

func hash7(password string, salt []byte, iter int) (string, error) {
	key, err := pbkdf2.Key(sha512.New, password, salt, iter, keyLen)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	enc := base64.StdEncoding
	return "$7$" + strconv.Itoa(iter) + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(key), nil
}

// Verify reports whether password matches a mosquitto password-file hash:
// "$7$" (PBKDF2-SHA512, mosquitto 2) or "$6$" (salted SHA-512, mosquitto
// 1.x). ErrBadHash if hash is neither.
func Verify(password, hash string) (bool, error) {
	enc := base64.StdEncoding
	switch {
	case strings.HasPrefix(hash, "$7$"):
		p := strings.Split(hash[3:], "$")
		if len(p) != 3 {
			return false, fmt.Errorf("%w: want $7$ITERATIONS$SALT$HASH", ErrBadHash)
		}
		iter, err := strconv.Atoi(p[0])
		if err != nil || iter < 1 || iter > maxIterations {
			return false, fmt.Errorf("%w: iterations %q", ErrBadHash, p[0])
		}
		salt, err1 := enc.DecodeString(p[1])
		want, err2 := enc.DecodeString(p[2])
		if err1 != nil || err2 != nil || len(salt) == 0 || len(want) == 0 || len(want) > keyLen {
			return false, fmt.Errorf("%w: bad salt or hash", ErrBadHash)
		}
		got, err := pbkdf2.Key(sha512.New, password, salt, iter, len(want))
		if err != nil {
			return false, err
		}
		return subtle.ConstantTimeCompare(got, want) == 1, nil
	case strings.HasPrefix(hash, "$6$"):
		p := strings.Split(hash[3:], "$")
		if len(p) != 2 {
			return false, fmt.Errorf("%w: want $6$SALT$HASH", ErrBadHash)
		}
		salt, err1 := enc.DecodeString(p[0])
		want, err2 := enc.DecodeString(p[1])
		if err1 != nil || err2 != nil || len(salt) == 0 || len(want) != sha512.Size {
			return false, fmt.Errorf("%w: bad salt or hash", ErrBadHash)
		}
		got := sha512.Sum512(append([]byte(password), salt...))
		return subtle.ConstantTimeCompare(got[:], want) == 1, nil
	}
	return false, ErrBadHash
}
