package auth

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestNewTokenIsRandomHex(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok := NewToken()
		if !hex64.MatchString(tok) {
			t.Fatalf("token %q is not 64 lower-case hex digits", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q came twice", tok)
		}
		seen[tok] = true
	}
}

func TestHashAndCheck(t *testing.T) {
	tok := NewToken()
	h := Hash(tok)
	if !hex64.MatchString(h) || h == tok {
		t.Fatalf("Hash = %q", h)
	}
	if Hash(tok) != h {
		t.Fatal("Hash is not stable")
	}
	tests := []struct {
		name        string
		token, hash string
		want        bool
	}{
		{"right token", tok, h, true},
		{"wrong token", NewToken(), h, false},
		{"token with a changed digit", flip(tok), h, false},
		{"the hash as the token", h, h, false},
		{"empty token", "", h, false},
		{"empty hash", tok, "", false},
		{"both empty", "", "", false},
		{"empty token against the hash of empty", "", Hash(""), false},
		{"upper-case hash", tok, strings.ToUpper(h), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Check(tc.token, tc.hash); got != tc.want {
				t.Fatalf("Check = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"secret", "secret", true},
		{"secret", "secreT", false},
		{"secret", "secret2", false},
		{"", "", false},
		{"", "x", false},
	}
	for _, tc := range tests {
		if got := Equal(tc.a, tc.b); got != tc.want {
			t.Errorf("Equal(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestLoadOrCreateAdminToken(t *testing.T) {
	dir := t.TempDir()
	tok, err := LoadOrCreateAdminToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !hex64.MatchString(tok) {
		t.Fatalf("admin token %q", tok)
	}
	path := filepath.Join(dir, AdminTokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if strings.TrimSpace(string(b)) != tok {
		t.Fatalf("file holds %q, want %q", b, tok)
	}
	again, err := LoadOrCreateAdminToken(dir)
	if err != nil || again != tok {
		t.Fatalf("second load = %q, %v; want %q", again, err, tok)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data folder holds %d files, want only admin.token", len(entries))
	}
}

func TestLoadAdminTokenEmptyFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, AdminTokenFile), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := LoadOrCreateAdminToken(dir); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("LoadOrCreateAdminToken on an empty file = %q, %v; want an error saying what to do", tok, err)
	}
}

func TestLoadAdminTokenUnwritableFolder(t *testing.T) {
	if _, err := LoadOrCreateAdminToken(filepath.Join(t.TempDir(), "missing", "folder")); err == nil {
		t.Fatal("no error for a folder that does not exist")
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}
