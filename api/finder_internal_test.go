package api

import (
	"strings"
	"testing"
)

// TestFinderAcrossWrites: the version string is found wherever the writes
// split it.
func TestFinderAcrossWrites(t *testing.T) {
	text := strings.Repeat("x", 100) + "0.14.0" + strings.Repeat("y", 100)
	for cut := 0; cut <= len(text); cut++ {
		f := &finder{want: []byte("0.14.0")}
		f.Write([]byte(text[:cut]))
		f.Write([]byte(text[cut:]))
		if !f.found {
			t.Fatalf("not found with the writes cut at %d", cut)
		}
	}
	f := &finder{want: []byte("0.14.1")}
	for _, c := range text {
		f.Write([]byte(string(c)))
	}
	if f.found {
		t.Fatal("found a version that is not there")
	}
}
