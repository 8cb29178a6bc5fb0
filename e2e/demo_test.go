package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs `loa demo` as a new user would (make demo), without a sound
// card: it must end well with both boxes of thon-1 playing.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	c := cli{t: t, bin: filepath.Join(binDir, "loa")}
	out, errOut, code := c.run("demo", "--dir", filepath.Join(dir, "demo"), "--speaker", "no", "--agent", filepath.Join(binDir, "loa-agent"))
	if code != 0 || !strings.Contains(out, "All 2 box(es) played it.") {
		t.Fatalf("loa demo exited %d:\n%s\n%s", code, out, errOut)
	}
}
