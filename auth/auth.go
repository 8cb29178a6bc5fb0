package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/loa-commune/loa/internal/atomicfile"
)

// ControllerUser is the MQTT username of the controller itself.
const ControllerUser = "loa-controller"

// NewToken returns a fresh random secret, 64 hex digits.
func NewToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("auth: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// Hash is what is stored for a token.
func Hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Check reports whether token matches the stored hash, in constant time.
func Check(token, hash string) bool {
	if token == "" || hash == "" {
		return false
	}
	got := Hash(token)
	return subtle.ConstantTimeCompare([]byte(got), []byte(hash)) == 1
}

// Equal compares two secrets in constant time.
func Equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// AdminTokenFile is the name of the admin token file in the data folder.
const AdminTokenFile = "admin.token"

// LoadOrCreateAdminToken reads <dir>/admin.token, creating it (mode 0600)
// with a new token on first start.
func LoadOrCreateAdminToken(dir string) (string, error) {
	path := filepath.Join(dir, AdminTokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("admin token file %s is empty: delete it and restart to make a new one", path)
		}
		return tok, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	tok := NewToken()
	if err := atomicfile.Write(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	return tok, nil
}
