package tts

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
)

func needEspeak(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("espeak-ng is not installed: apt-get install espeak-ng")
		}
		t.Skip("espeak-ng is not installed")
	}
}

func TestRenderVietnamese(t *testing.T) {
	needEspeak(t)
	r := New(Options{})
	short, err := r.Render(context.Background(), "Thông báo")
	if err != nil {
		t.Fatal(err)
	}
	long, err := r.Render(context.Background(), "-- Thông báo của Ủy ban nhân dân xã: ngày mai mất điện từ bảy giờ đến mười một giờ.")
	if err != nil {
		t.Fatal(err)
	}
	var durations []time.Duration
	for _, b := range [][]byte{short, long} {
		info, err := audio.Probe(bytes.NewReader(b), time.Minute)
		if err != nil {
			t.Fatalf("speech does not decode: %v", err)
		}
		durations = append(durations, info.Duration)
	}
	if durations[0] < 300*time.Millisecond || durations[1] < 3*durations[0] {
		t.Fatalf("speech durations %v: the longer text should speak several times longer", durations)
	}
}

func TestRenderRefuses(t *testing.T) {
	r := New(Options{MaxChars: 10})
	if _, err := r.Render(context.Background(), "   "); !errors.Is(err, ErrEmpty) {
		t.Errorf("blank text: %v", err)
	}
	if _, err := r.Render(context.Background(), strings.Repeat("ă", 11)); !errors.Is(err, ErrTooLong) {
		t.Errorf("11 characters with MaxChars 10: %v", err)
	}
	missing := New(Options{Command: []string{"no-such-tts-engine", "{out}"}})
	if _, err := missing.Render(context.Background(), "xin chào"); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Errorf("missing command: %v", err)
	}
	silent := New(Options{Command: []string{"true"}})
	if _, err := silent.Render(context.Background(), "xin chào"); err == nil || !strings.Contains(err.Error(), "wrote no audio") {
		t.Errorf("command that writes nothing: %v", err)
	}
}
