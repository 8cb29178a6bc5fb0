package enrol

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/loa-commune/loa/protocol"
)

func newSigner(t *testing.T) *protocol.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return protocol.NewSigner(priv)
}

func TestCodeTextRoundTrip(t *testing.T) {
	c := NewCode(newSigner(t).Public())
	s := c.String()
	if len(s) != 39 || strings.Count(s, "-") != 7 {
		t.Fatalf("code %q: want 8 groups of 4", s)
	}
	typed := []string{s, strings.ToLower(s), strings.ReplaceAll(s, "-", ""), strings.ReplaceAll(s, "-", " "),
		strings.NewReplacer("0", "O", "1", "l").Replace(s)}
	for _, in := range typed {
		got, err := ParseCode(in)
		if err != nil || got != c {
			t.Errorf("ParseCode(%q) = %v, %v; want the code back", in, got, err)
		}
	}
}

func TestCodeTypoCaught(t *testing.T) {
	s := NewCode(newSigner(t).Public()).String()
	for i, r := range s {
		if r == '-' {
			continue
		}
		repl := byte('A')
		if r == 'A' {
			repl = 'B'
		}
		typo := s[:i] + string(repl) + s[i+1:]
		if _, err := ParseCode(typo); !errors.Is(err, ErrBadCode) {
			t.Errorf("typo at %d (%q) not caught: %v", i, typo, err)
		}
	}
	for _, bad := range []string{"", "ABCD", s + "0", s[:len(s)-1], "UUUU-UUUU-UUUU-UUUU-UUUU-UUUU-UUUU-UUUU"} {
		if _, err := ParseCode(bad); !errors.Is(err, ErrBadCode) {
			t.Errorf("ParseCode(%q) = %v, want ErrBadCode", bad, err)
		}
	}
}

func TestExchange(t *testing.T) {
	ctl := newSigner(t)
	c := NewCode(ctl.Public())
	req, priv, err := NewRequest(c)
	if err != nil {
		t.Fatal(err)
	}
	if !req.Matches(c.MACKey()) {
		t.Fatal("request does not match its own code")
	}
	other := NewCode(ctl.Public())
	if req.Matches(other.MACKey()) {
		t.Fatal("request matches another code")
	}
	config := []byte("id: box-1\ntoken: s3cret\n")
	resp, err := Seal(req, c.MACKey(), config, ctl)
	if err != nil {
		t.Fatal(err)
	}
	got, key, err := Open(resp, c, req, priv)
	if err != nil || string(got) != string(config) || !key.Equal(ctl.Public()) {
		t.Fatalf("Open = %q, %v, %v", got, key, err)
	}

	t.Run("another controller", func(t *testing.T) {
		mallory := newSigner(t)
		forged, err := Seal(req, c.MACKey(), []byte("id: box-1\nbroker: tcp://evil:1883\n"), mallory)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := Open(forged, c, req, priv); !errors.Is(err, ErrWrongController) {
			t.Fatalf("a configuration signed by another key: %v, want ErrWrongController", err)
		}
	})
	t.Run("tampered", func(t *testing.T) {
		for i := range []int{0, 1, 2} {
			bad := resp
			switch i {
			case 0:
				bad.Sealed = append([]byte{}, resp.Sealed...)
				bad.Sealed[len(bad.Sealed)-1] ^= 1
			case 1:
				bad.ServerKey = append([]byte{}, resp.ServerKey...)
				bad.ServerKey[0] ^= 1
			case 2:
				bad.Sig = append([]byte{}, resp.Sig...)
				bad.Sig[3] ^= 1
			}
			if _, _, err := Open(bad, c, req, priv); !errors.Is(err, ErrBadResponse) {
				t.Errorf("tampered answer %d: %v, want ErrBadResponse", i, err)
			}
		}
	})
	t.Run("answer to another box", func(t *testing.T) {
		req2, priv2, _ := NewRequest(c)
		if _, _, err := Open(resp, c, req2, priv2); err == nil {
			t.Fatal("an answer sealed for another request opened")
		}
	})
}

func FuzzParseCode(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	f.Add(NewCode(protocol.NewSigner(priv).Public()).String())
	f.Add("0000-0000")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCode(s)
		if err != nil {
			return
		}
		if back, err := ParseCode(c.String()); err != nil || back != c {
			t.Fatalf("%q parsed to a code that does not round-trip: %v", s, err)
		}
	})
}
