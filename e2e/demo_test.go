package e2e

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDemo runs `loa demo --keep` as a new user would (make demo), without
// a sound card: both boxes of thon-1 must play, then the web console's
// address and a token to sign in with are printed, the console lets that
// token in and shows the demo's boxes, and Ctrl+C ends the demo well.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(binDir, "loa"), "demo", "--keep", "--dir", filepath.Join(dir, "demo"), "--speaker", "no",
		"--http", "127.0.0.1:0", "--agent", filepath.Join(binDir, "loa-agent"))
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var mu sync.Mutex
	console := make(chan [2]string, 1)
	consoleRE := regexp.MustCompile(`Web console: (http://\S+)/`)
	go func() {
		sc := bufio.NewScanner(stdout)
		var addr string
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			out.WriteString(line + "\n")
			mu.Unlock()
			if m := consoleRE.FindStringSubmatch(line); m != nil {
				addr = m[1]
			}
			if tok, ok := strings.CutPrefix(line, "  "); ok && addr != "" {
				console <- [2]string{addr, strings.TrimSpace(tok)}
				addr = ""
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	defer cmd.Process.Kill()
	var found [2]string
	select {
	case found = <-console:
	case <-time.After(3 * time.Minute):
		mu.Lock()
		t.Fatalf("loa demo --keep printed no console address and token:\n%s\n%s", out.String(), errOut.String())
	}
	mu.Lock()
	if !strings.Contains(out.String(), "All 2 box(es) played it.") {
		t.Errorf("loa demo: not both boxes played:\n%s", out.String())
	}
	mu.Unlock()

	// Sign in as the demo says, with the console's own form.
	base, token := found[0], found[1]
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	page := func(resp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	login := page(hc.Get(base + "/login"))
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(login)
	if m == nil {
		t.Fatalf("no sign-in form at %s/login:\n%s", base, login)
	}
	status := page(hc.PostForm(base+"/login", url.Values{"csrf": {m[1]}, "token": {token}, "next": {"/"}}))
	for _, want := range []string{"demo-operator", `id="box-thon1-a"`, `id="pin-thon2-a"`} {
		if !strings.Contains(status, want) {
			t.Fatalf("the console's status page after signing in with the printed token lacks %s:\n%s", want, status)
		}
	}

	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("loa demo after Ctrl+C: %v\n%s", err, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("loa demo did not stop within 30 s of Ctrl+C")
	}
}
