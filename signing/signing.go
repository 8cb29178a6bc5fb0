package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/loa-commune/loa/internal/atomicfile"
	"github.com/loa-commune/loa/protocol"
)

// File names in the data folder.
const (
	CurrentFile = "controller.key"
	NextFile    = "controller.next.key"
)

// Keys is the controller's signing keys. Its methods are safe for
// concurrent use.
type Keys struct {
	dir string

	mu      sync.Mutex
	current *protocol.Signer
	next    *protocol.Signer // nil unless rotating
}

// LoadOrCreate reads the keys in dir, creating the current key if there is
// none.
func LoadOrCreate(dir string) (*Keys, error) {
	k := &Keys{dir: dir}
	cur, err := load(filepath.Join(dir, CurrentFile))
	if errors.Is(err, fs.ErrNotExist) {
		cur, err = create(filepath.Join(dir, CurrentFile))
	}
	if err != nil {
		return nil, err
	}
	k.current = cur
	next, err := load(filepath.Join(dir, NextFile))
	switch {
	case err == nil:
		k.next = next
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return k, nil
}

// Signers are the keys every message is signed with.
func (k *Keys) Signers() []*protocol.Signer {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.next != nil {
		return []*protocol.Signer{k.current, k.next}
	}
	return []*protocol.Signer{k.current}
}

// Trusted are the public keys boxes must trust, in text form: the current
// key, and the next one while rotating.
func (k *Keys) Trusted() []string {
	var out []string
	for _, s := range k.Signers() {
		out = append(out, protocol.FormatPublicKey(s.Public()))
	}
	return out
}

// Public is the current public key in text form, for provisioning.
func (k *Keys) Public() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return protocol.FormatPublicKey(k.current.Public())
}

// RotationStarted is when the next key was made (zero when not rotating).
func (k *Keys) RotationStarted() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.next == nil {
		return time.Time{}
	}
	fi, err := os.Stat(filepath.Join(k.dir, NextFile))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// Rotating reports whether a next key exists.
func (k *Keys) Rotating() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.next != nil
}

// StartRotation creates the next key (or keeps the one being rolled out).
func (k *Keys) StartRotation() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.next != nil {
		return nil
	}
	next, err := create(filepath.Join(k.dir, NextFile))
	if err != nil {
		return err
	}
	k.next = next
	return nil
}

// FinishRotation makes the next key the current one; the old key is
// removed. Boxes that did not get a config listing the next key while both
// were in use must be re-provisioned.
func (k *Keys) FinishRotation() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.next == nil {
		return errors.New("no key rotation in progress: start one first")
	}
	if err := os.Rename(filepath.Join(k.dir, NextFile), filepath.Join(k.dir, CurrentFile)); err != nil {
		return fmt.Errorf("finish key rotation: %w", err)
	}
	k.current, k.next = k.next, nil
	return nil
}

// The key file holds the 32-byte seed, base64, on one line.
func load(path string) (*protocol.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s is damaged: restore it from a backup (boxes trust only this key)", path)
	}
	return protocol.NewSigner(ed25519.NewKeyFromSeed(seed)), nil
}

func create(path string) (*protocol.Signer, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	if err := atomicfile.Write(path, []byte(base64.StdEncoding.EncodeToString(seed)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	return protocol.NewSigner(ed25519.NewKeyFromSeed(seed)), nil
}

// Current is the key new boxes learn first (enrolment signs with it).
func (k *Keys) Current() *protocol.Signer {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.current
}
