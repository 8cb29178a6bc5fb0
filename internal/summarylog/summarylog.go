package summarylog

import (
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// Log counts events between summaries. It is safe for concurrent use.
// While events are being counted a timer runs; it ends by itself after an
// interval with none, or at Stop.
type Log struct {
	log          *slog.Logger
	first, after string // the messages of the first line and of summaries

	mu       sync.Mutex
	every    time.Duration
	timer    *time.Timer // set while events are being counted
	stopped  bool
	total    int
	byReason map[string]int
	byClient map[string]int
	lastErr  error
}

// maxClients bounds the clients a summary counts one by one, so a flood
// from many addresses cannot grow the log's memory.
const maxClients = 1000

// New logs the first event as first, then summaries as after, at most one
// per every.
func New(log *slog.Logger, first, after string, every time.Duration) *Log {
	return &Log{log: log, first: first, after: after, every: every}
}

// SetEvery changes the interval from the next summary on.
func (l *Log) SetEvery(every time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.every = every
}

// Add logs or counts one event. client may be "" (not counted by client);
// err, if not nil, is logged with the first line, and the last one with the
// summary.
func (l *Log) Add(client, reason string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	if l.timer == nil {
		args := []any{"reason", reason}
		if client != "" {
			args = append(args, "client", client)
		}
		if err != nil {
			args = append(args, "err", err)
		}
		l.log.Warn(l.first, append(args, "then", "a summary every "+l.every.String())...)
		l.timer = time.AfterFunc(l.every, l.flush)
		return
	}
	if l.byReason == nil {
		l.byReason, l.byClient = map[string]int{}, map[string]int{}
	}
	l.total++
	l.byReason[reason]++
	if _, ok := l.byClient[client]; client != "" && (ok || len(l.byClient) < maxClients) {
		l.byClient[client]++
	}
	if err != nil {
		l.lastErr = err
	}
}

// flush runs on the timer: a summary, or, after a quiet interval, the end
// of the timer.
func (l *Log) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	if l.summarise() {
		l.timer.Reset(l.every)
	} else {
		l.timer = nil // the next event is logged at once
	}
}

// summarise logs and resets the counts; false when there were none.
func (l *Log) summarise() bool {
	if l.total == 0 {
		return false
	}
	args := []any{"count", l.total}
	for _, r := range slices.Sorted(maps.Keys(l.byReason)) { // a few fixed reasons
		args = append(args, r, l.byReason[r])
	}
	most, n := "", 0
	for c, k := range l.byClient {
		if k > n || (k == n && c < most) {
			most, n = c, k
		}
	}
	if n > 0 {
		args = append(args, "clients", len(l.byClient), "most", most, "most_count", n)
	}
	if l.lastErr != nil {
		args = append(args, "last_err", l.lastErr)
	}
	l.log.Warn(l.after, args...)
	l.total, l.byReason, l.byClient, l.lastErr = 0, nil, nil, nil
	return true
}

// Stop logs what is left and stops the timer; later events are not logged.
func (l *Log) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.stopped = true
	if l.timer != nil {
		l.timer.Stop()
	}
	l.summarise()
}
