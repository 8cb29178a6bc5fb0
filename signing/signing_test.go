package signing

import (
	"os"
	"path/filepath"
	"testing"
)

func TestKeysLifecycle(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, CurrentFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	first := k.Public()
	again, err := LoadOrCreate(dir)
	if err != nil || again.Public() != first {
		t.Fatalf("reload gave %v, %v; want the same key", again.Public(), err)
	}
	if err := k.FinishRotation(); err == nil {
		t.Fatal("finishing a rotation that never started succeeded")
	}
	if err := k.StartRotation(); err != nil {
		t.Fatal(err)
	}
	if got := k.Trusted(); len(got) != 2 || got[0] != first || len(k.Signers()) != 2 {
		t.Fatalf("while rotating, trusted %v", got)
	}
	reloaded, err := LoadOrCreate(dir) // a restart mid-rotation keeps both
	if err != nil || !reloaded.Rotating() {
		t.Fatalf("restart mid-rotation: rotating=%v, %v", reloaded.Rotating(), err)
	}
	next := k.Trusted()[1]
	if err := k.FinishRotation(); err != nil {
		t.Fatal(err)
	}
	if got := k.Trusted(); len(got) != 1 || got[0] != next {
		t.Fatalf("after rotation, trusted %v; want only %v", got, next)
	}
}

func TestKeyFileChecks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, CurrentFile)
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); err == nil {
		t.Fatal("a damaged key was accepted")
	}
	if _, err := LoadOrCreate(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	dir2 := t.TempDir()
	k, _ := LoadOrCreate(dir2)
	_ = k
	if err := os.Chmod(filepath.Join(dir2, CurrentFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir2); err == nil {
		t.Fatal("a key readable by others was accepted")
	}
}
