package loadtest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// updater is a simulated box's side of an agent update: it takes the offer
// in the box's signed config as loa-agent does (the build of its arch, a
// newer version only), downloads it over HTTP with the box's credentials,
// checks its SHA-256 and size, and reports downloading, then healthy with the
// new version. It installs nothing: the trial a real box runs is skipped.
type updater struct {
	arch   string
	server string       // the controller's base URL; empty: the config's media_url
	http   *http.Client // shared by the run's boxes
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool // wait has begun: no new download
	version string
	status  *protocol.UpdateStatus
	taken   map[string]bool // rollouts whose offer the box took
	offered bool            // an offer arrived
	// offerAt is when the offer arrived, doneAt when the box reported
	// healthy (or gave up), withdrawnAt when a config without the offer
	// followed it (the rollout ended).
	offerAt, doneAt, withdrawnAt time.Time
	configs, configBytes         int64         // config messages (topic and payload)
	downloaded                   int64         // build bytes received over HTTP
	fetchTook                    time.Duration // the last successful download
	fetches                      int           // GET requests made
	lastErr                      string
}

func newUpdater(arch, version, server string, client *http.Client) *updater {
	return &updater{arch: arch, version: version, server: server, http: client, taken: map[string]bool{}}
}

// state is what the box reports of itself in its heartbeat.
func (u *updater) state() (arch, version string, st *protocol.UpdateStatus) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.status != nil {
		s := *u.status
		st = &s
	}
	return u.arch, u.version, st
}

// onConfig notes a config message of n bytes that arrived at now and takes
// its update offer, if it has a new one.
func (u *updater) onConfig(b *box, cfg protocol.DeviceConfig, n int, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.configs++
	u.configBytes += int64(n)
	offer := cfg.Update
	if offer == nil {
		if u.offered && u.withdrawnAt.IsZero() {
			u.withdrawnAt = now
		}
		return
	}
	if u.closed || u.taken[offer.Rollout] {
		return
	}
	u.taken[offer.Rollout] = true
	u.offered, u.offerAt = true, now
	server := cmp.Or(u.server, cfg.MediaURL)
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		u.take(b, *offer, server)
	}()
}

// wait waits for the download under way, which ends when the box closes.
func (u *updater) wait() {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.wg.Wait()
}

// take does what loa-agent does with an offer, up to a healthy report.
func (u *updater) take(b *box, offer protocol.UpdateOffer, server string) {
	u.mu.Lock()
	current := u.version
	u.mu.Unlock()
	var build *protocol.UpdateBuild
	for i := range offer.Builds {
		if offer.Builds[i].Arch == u.arch {
			build = &offer.Builds[i]
		}
	}
	if build == nil {
		u.report(b, offer, protocol.UpdateRefused, "no build for "+u.arch, "")
		return
	}
	want, err := protocol.ParseVersion(offer.Version)
	if err != nil {
		u.report(b, offer, protocol.UpdateRefused, err.Error(), "")
		return
	}
	if have, err := protocol.ParseVersion(current); err == nil && want.Compare(have) <= 0 {
		u.report(b, offer, protocol.UpdateRefused, "not newer than "+current, "")
		return
	}
	u.report(b, offer, protocol.UpdateDownloading, "", "")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	url := strings.TrimRight(server, "/") + build.Path
	for attempt := 1; ; attempt++ {
		start := time.Now()
		sum, n, err := u.fetch(ctx, url, b.id, b.token)
		if err == nil {
			u.mu.Lock()
			u.fetchTook = time.Since(start)
			u.mu.Unlock()
			if n != build.Size || sum != build.SHA256 {
				u.report(b, offer, protocol.UpdateRefused, fmt.Sprintf("tampered: %d bytes, sha256 %s", n, sum), "")
				return
			}
			u.report(b, offer, protocol.UpdateHealthy, "", offer.Version)
			return
		}
		u.mu.Lock()
		u.lastErr = err.Error()
		u.mu.Unlock()
		if attempt == 5 || ctx.Err() != nil {
			u.report(b, offer, protocol.UpdateFailed, err.Error(), "")
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
}

// fetch downloads url with the box's credentials and returns the body's
// SHA-256 and length.
func (u *updater) fetch(ctx context.Context, url, id, token string) (string, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	req.SetBasicAuth(id, token)
	u.mu.Lock()
	u.fetches++
	u.mu.Unlock()
	resp, err := u.http.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("fetch the build: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("fetch the build: %s", resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(&countingReader{r: resp.Body, u: u}, protocol.MaxBuildSize+1))
	if err != nil {
		return "", n, fmt.Errorf("fetch the build: %w", err)
	}
	if n > protocol.MaxBuildSize {
		return "", n, errors.New("the build is larger than any build may be")
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// countingReader adds what it reads to its updater's downloaded bytes.
type countingReader struct {
	r io.Reader
	u *updater
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.u.mu.Lock()
	c.u.downloaded += int64(n)
	c.u.mu.Unlock()
	return n, err
}

// report sets the update's status (and, once healthy, the version the box
// runs) and sends the box's state at once, as the agent does.
func (u *updater) report(b *box, offer protocol.UpdateOffer, status, detail, version string) {
	u.mu.Lock()
	u.status = &protocol.UpdateStatus{Rollout: offer.Rollout, Version: offer.Version, Status: status, Detail: detail}
	if version != "" {
		u.version = version
	}
	if status != protocol.UpdateDownloading {
		u.doneAt = time.Now()
	}
	u.mu.Unlock()
	b.heartbeat(0)
}
