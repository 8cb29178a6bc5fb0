package device

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/internal/atomicfile"
	"github.com/loa-commune/loa/internal/resume"
	"github.com/loa-commune/loa/protocol"
)

const (
	fetchWorkers    = 2
	fetchBackoffMin = 2 * time.Second
	fetchBackoffMax = 5 * time.Minute
	// minFetchRate is the slowest download the agent waits for (a weak 3G
	// link) before giving up an attempt; a later attempt resumes with Range.
	minFetchRate = 8 << 10 // bytes per second

	partSuffix = ".part"
	tmpSuffix  = ".tmp"
	pcmSuffix  = ".f32"
)

// ErrMediaCorrupt means the downloaded bytes do not match the plan's size or
// SHA-256. Nothing is kept; the download is retried.
var ErrMediaCorrupt = errors.New("media does not match its SHA-256 or size")

// mediaState is the loop's view of one media file.
type mediaState struct {
	ready    bool // <cache>/pcm/<sha>.f32 exists
	fetching bool
	broken   bool // downloaded fine but cannot be decoded: not retried
	attempts int
	nextTry  time.Time
	lastErr  string
}

type fetchJob struct {
	sha        string
	size       int64
	durationMS int64  // for the size of the decoded PCM
	base       string // controller base URL
}

type fetchResult struct {
	sha       string
	err       error
	permanent bool
	// progressed is true when a failed attempt still added to the partial
	// download: the link works, it is only cut now and then.
	progressed bool
	// room is true when the memory card had room for the files.
	room bool
}

// roomReserve is left free on the memory card beyond a media file's needs,
// for state.json and the answers waiting to be sent.
const roomReserve = 4 << 20

func (a *Agent) mediaDir() string            { return filepath.Join(a.cfg.Cache, "media") }
func (a *Agent) pcmDir() string              { return filepath.Join(a.cfg.Cache, "pcm") }
func (a *Agent) mediaPath(sha string) string { return filepath.Join(a.mediaDir(), sha) }
func (a *Agent) pcmPath(sha string) string   { return filepath.Join(a.pcmDir(), sha+pcmSuffix) }

// mediaFor returns the loop's record of sha, creating it from the cache.
func (a *Agent) mediaFor(sha string) *mediaState {
	ms := a.media[sha]
	if ms == nil {
		ms = &mediaState{}
		if _, err := os.Stat(a.pcmPath(sha)); err == nil {
			ms.ready = true
		}
		a.media[sha] = ms
	}
	return ms
}

// mediaProblem says why sha is not ready, for a missed item's reason.
func (a *Agent) mediaProblem(sha string) reason {
	ms := a.mediaFor(sha)
	switch {
	case ms.lastErr != "" && ms.fetching:
		return because(protocol.WhyDownloadRetrying, ms.lastErr)
	case ms.lastErr != "":
		return because(protocol.WhyDownloadFailed, ms.lastErr)
	case ms.fetching:
		return because(protocol.WhyDownloading)
	}
	return because(protocol.WhyDownloadNotBegun)
}

// mediaBase is where media is downloaded from: the device config's media URL
// if it has a usable one, else the configured controller.
func (a *Agent) mediaBase() string {
	if a.config != nil && usableMediaURL(a.config.Config.MediaURL) {
		return a.config.Config.MediaURL
	}
	return a.cfg.Server
}

// usableMediaURL reports whether s is an http(s) URL with a host.
func usableMediaURL(s string) bool {
	u, err := url.Parse(s)
	return s != "" && err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// dispatchFetches hands media that waiting items need to idle fetch workers,
// most urgent first, and notes when the next retry is due.
func (a *Agent) dispatchFetches(now time.Time, plausible bool) {
	type want struct {
		sha   string
		size  int64
		dur   int64
		prio  protocol.Priority
		start time.Time
	}
	wants := map[string]*want{}
	for id, it := range a.live {
		rec := a.items[id]
		// Received items need their media; so do an emergency that started
		// with its alert tone alone and a preempted item whose file went.
		if rec == nil || rec.Status.Final() || !hasMedia(it) || (plausible && now.After(it.Expires)) {
			continue
		}
		ms := a.mediaFor(it.Media.SHA256)
		if ms.ready || ms.fetching || ms.broken {
			continue
		}
		w := wants[it.Media.SHA256]
		if w == nil {
			w = &want{sha: it.Media.SHA256, size: it.Media.Size, dur: it.Media.DurationMS, prio: it.Priority, start: it.Start}
			wants[w.sha] = w
		}
		if it.Priority > w.prio || (it.Priority == w.prio && it.Start.Before(w.start)) {
			w.prio, w.start = it.Priority, it.Start
		}
	}
	// The rules' media is fetched ahead, after what items need: a box cut
	// off for weeks plays its monthly rule too.
	for _, h := range a.ruleMedia() {
		if _, ok := wants[h.media.SHA256]; ok {
			continue
		}
		if ms := a.mediaFor(h.media.SHA256); !ms.ready && !ms.fetching && !ms.broken {
			wants[h.media.SHA256] = &want{sha: h.media.SHA256, size: h.media.Size, dur: h.media.DurationMS, prio: protocol.Background - 1, start: now.Add(ruleLookahead)}
		}
	}
	order := make([]*want, 0, len(wants))
	for _, w := range wants {
		order = append(order, w)
	}
	slices.SortFunc(order, func(x, y *want) int {
		return cmp.Or(-cmp.Compare(x.prio, y.prio), x.start.Compare(y.start), strings.Compare(x.sha, y.sha))
	})
	a.retryAt = time.Time{}
	base := a.mediaBase()
	for _, w := range order {
		ms := a.media[w.sha]
		if ms.nextTry.After(now) {
			if a.retryAt.IsZero() || ms.nextTry.Before(a.retryAt) {
				a.retryAt = ms.nextTry
			}
			continue
		}
		if a.inflight >= fetchWorkers {
			continue
		}
		ms.fetching = true
		a.inflight++
		a.fetchReq <- fetchJob{sha: w.sha, size: w.size, durationMS: w.dur, base: base}
	}
}

// onFetched takes a fetch worker's result.
func (a *Agent) onFetched(r fetchResult) {
	a.inflight--
	ms := a.mediaFor(r.sha)
	ms.fetching = false
	now := a.clock.Now()
	if r.err != nil {
		// A full or unwritable memory card is reported in plain words,
		// also as the reason of the items it makes miss.
		r.err = a.diskProblem(srcMedia, r.err, now)
		if r.room && !isDiskFull(r.err) {
			if p, ok := a.problems[srcMedia]; ok && p.Code == protocol.ProblemDiskFull {
				a.clearProblem(srcMedia)
			}
		}
	} else {
		a.diskProblem(srcMedia, nil, now)
	}
	switch {
	case r.err == nil:
		ms.ready, ms.attempts, ms.lastErr, ms.nextTry = true, 0, "", time.Time{}
		a.log.Info("media ready", keySHA, r.sha)
	case r.permanent:
		ms.broken, ms.lastErr = true, r.err.Error()
		a.log.Error("media cannot be played", keySHA, r.sha, keyErr, r.err)
	default:
		ms.attempts++
		if r.progressed {
			// A link that cuts every few seconds but moves data is retried
			// at once (well, at the shortest wait), not ever more slowly.
			ms.attempts = 1
		}
		ms.lastErr = r.err.Error()
		ms.nextTry = now.Add(backoff(ms.attempts))
		a.log.Warn("media download failed; will retry", keySHA, r.sha, keyTry, ms.attempts, "retry_at", ms.nextTry, keyErr, r.err)
	}
	for id, it := range a.live {
		if it.Media.SHA256 == r.sha {
			a.updateReadiness(it, a.items[id])
		}
	}
	if r.err == nil {
		a.evictCache(0)
	}
	// A full card gives up old recordings no item needs any more, and the
	// fetch is tried again at once if that made room (a card filled by
	// other files may well still be too full: then it waits as above).
	var full *diskFullError
	if errors.As(r.err, &full) && full.need > full.free && a.evictCache(full.need-full.free) {
		a.log.Info("made room on the memory card", keySHA, r.sha, keyBytes, full.need-full.free)
		ms.nextTry = now
	}
}

// backoff is the wait before retry n (1, 2, ...): doubling from
// fetchBackoffMin up to fetchBackoffMax, with ±20 % jitter.
func backoff(n int) time.Duration {
	d := fetchBackoffMin
	for i := 1; i < n && d < fetchBackoffMax; i++ {
		d *= 2
	}
	d = min(d, fetchBackoffMax)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// runFetcher downloads and decodes media until ctx is done.
func (a *Agent) runFetcher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-a.fetchReq:
			before := a.partSize(j.sha)
			err := a.checkRoom(j)
			room, perm := err == nil, false
			if err == nil {
				perm, err = a.fetch(ctx, j)
			}
			progressed := err != nil && a.partSize(j.sha) > before
			select {
			case a.fetchRes <- fetchResult{sha: j.sha, err: err, permanent: perm, progressed: progressed, room: room}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// checkRoom returns a *diskFullError when the memory card has no room for
// what fetching j will write: the rest of the download, the decoded PCM and
// a reserve. If the free space cannot be read, it lets the writes find out.
func (a *Agent) checkRoom(j fetchJob) error {
	need := int64(roomReserve)
	if _, err := os.Stat(a.mediaPath(j.sha)); err != nil {
		need += max(j.size-a.partSize(j.sha), 0)
	}
	need += j.durationMS * int64(a.format.SampleRate) / 1000 * int64(a.format.BytesPerFrame())
	free, err := a.freeSpace(a.cfg.Cache)
	if err != nil || free >= need {
		return nil
	}
	return fmt.Errorf("fetch media %s: %w", j.sha, &diskFullError{dir: a.cfg.Cache, free: free, need: need})
}

// fetch makes <cache>/pcm/<sha>.f32, downloading <cache>/media/<sha> first
// if needed. permanent is true when retrying cannot help.
func (a *Agent) fetch(ctx context.Context, j fetchJob) (permanent bool, err error) {
	if _, err := os.Stat(a.mediaPath(j.sha)); err != nil {
		if err := a.download(ctx, j); err != nil {
			return false, fmt.Errorf("fetch media %s: %w", j.sha, err)
		}
	}
	return a.decode(ctx, j.sha)
}

// download fetches the media into <cache>/media/<sha>, resuming a partial
// earlier attempt with Range, and renames it into place only once its size
// and SHA-256 are right.
func (a *Agent) download(ctx context.Context, j fetchJob) error {
	final := a.mediaPath(j.sha)
	err := resume.Download(ctx, resume.Request{
		URL:  strings.TrimRight(j.base, "/") + "/v1/media/" + j.sha,
		User: a.cfg.ID, Password: a.cfg.Token, Size: j.size, MinRate: minFetchRate, Client: a.http,
	}, final+partSuffix, j.sha)
	if errors.Is(err, resume.ErrMismatch) {
		return fmt.Errorf("%w: %w", ErrMediaCorrupt, err)
	}
	if err != nil {
		return err
	}
	if err := os.Rename(final+partSuffix, final); err != nil {
		return err
	}
	return atomicfile.SyncDir(a.mediaDir())
}

// partSize is how much of sha's partial download is on disk.
func (a *Agent) partSize(sha string) int64 { return resume.Have(a.mediaPath(sha) + partSuffix) }

// decode transcodes the media once into the sink's format as
// <cache>/pcm/<sha>.f32.
func (a *Agent) decode(ctx context.Context, sha string) (permanent bool, err error) {
	src, err := os.Open(a.mediaPath(sha))
	if err != nil {
		return false, fmt.Errorf("decode media %s: %w", sha, err)
	}
	defer src.Close()
	final := a.pcmPath(sha)
	tmp := final + tmpSuffix
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return false, fmt.Errorf("decode media %s: %w", sha, err)
	}
	ew := &errWriter{ctx: ctx, w: out}
	bw := bufio.NewWriterSize(ew, 64<<10)
	_, err = audio.Transcode(src, a.format, bw)
	// A file that does not decode will not decode next time either; a
	// failing write (disk full, shutting down) may pass.
	permanent = err != nil && ew.err == nil
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return permanent, fmt.Errorf("decode media %s: %w", sha, err)
	}
	if err := atomicfile.SyncDir(a.pcmDir()); err != nil {
		return false, fmt.Errorf("decode media %s: %w", sha, err)
	}
	return false, nil
}

// errWriter remembers the first write error, to tell I/O trouble from a bad
// file, and stops the decoder when ctx is done.
type errWriter struct {
	ctx context.Context
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if err := e.ctx.Err(); err != nil {
		e.err = err
		return 0, err
	}
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// cacheEntry is the files of one media id in the cache.
type cacheEntry struct {
	sha   string
	files []string
	bytes int64
	used  time.Time
}

// scanCache lists the cache's files by media id.
func (a *Agent) scanCache() map[string]*cacheEntry {
	out := map[string]*cacheEntry{}
	for _, dir := range []string{a.mediaDir(), a.pcmDir()} {
		des, err := os.ReadDir(dir)
		if err != nil {
			a.log.Warn("scan cache", keyErr, err)
			continue
		}
		for _, de := range des {
			name := de.Name()
			sha := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, tmpSuffix), partSuffix), pcmSuffix)
			info, err := de.Info()
			if err != nil || !info.Mode().IsRegular() || protocol.ValidSHA256(sha) != nil {
				continue
			}
			e := out[sha]
			if e == nil {
				e = &cacheEntry{sha: sha}
				out[sha] = e
			}
			e.files = append(e.files, filepath.Join(dir, name))
			e.bytes += info.Size()
			e.used = later(e.used, info.ModTime())
		}
	}
	return out
}

// evictCache removes the least recently used media that no item of the
// merged plan refers to until the cache fits cache_max_mb and, when room is
// above 0, until it has freed room more bytes on a full memory card. It
// reports whether it freed that room.
func (a *Agent) evictCache(room int64) bool {
	inUse := map[string]bool{}
	for _, it := range a.live {
		inUse[it.Media.SHA256] = true
	}
	for _, h := range a.ruleMedia() { // pinned: the rules need it later
		inUse[h.media.SHA256] = true
	}
	for sha, ms := range a.media {
		if ms.fetching {
			inUse[sha] = true
		} else if !inUse[sha] {
			delete(a.media, sha) // forget what no item needs; the cache on disk says the rest
		}
	}
	entries := a.scanCache()
	var total int64
	for _, e := range entries {
		total += e.bytes
	}
	limit := min(int64(a.cfg.CacheMaxMB)<<20, total-room)
	if total > limit {
		var victims []*cacheEntry
		for _, e := range entries {
			if !inUse[e.sha] {
				victims = append(victims, e)
			}
		}
		slices.SortFunc(victims, func(x, y *cacheEntry) int { return x.used.Compare(y.used) })
		for _, e := range victims {
			if total <= limit {
				break
			}
			for _, f := range e.files {
				if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
					a.log.Warn("evict from cache", "file", f, keyErr, err)
				}
			}
			total -= e.bytes
			a.log.Info("evicted from cache", keySHA, e.sha, keyBytes, e.bytes)
		}
		if total > limit && room == 0 {
			a.log.Warn("cache is over its limit with media the plan still needs", keyBytes, total, "limit", limit)
		}
	}
	a.cacheBytes = total
	return total <= limit
}

// cleanCache removes what an interrupted run left behind, before any worker
// runs. Partial downloads stay, to be resumed.
func (a *Agent) cleanCache() {
	des, _ := os.ReadDir(a.pcmDir())
	for _, de := range des {
		if strings.HasSuffix(de.Name(), tmpSuffix) {
			os.Remove(filepath.Join(a.pcmDir(), de.Name()))
		}
	}
	os.Remove(a.statePath + tmpSuffix)
	for _, e := range a.scanCache() {
		a.cacheBytes += e.bytes
	}
}

// clearPCM removes every decoded file (the output format changed).
func (a *Agent) clearPCM() {
	des, _ := os.ReadDir(a.pcmDir())
	for _, de := range des {
		os.Remove(filepath.Join(a.pcmDir(), de.Name()))
	}
	clear(a.media)
}
