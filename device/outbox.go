package device

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/internal/atomicfile"
)

// The on-disk outbox of answer-back events.
//
// Layout: <cache>/outbox/<seq>.ev, one file per event, where <seq> is a
// 20-digit, zero-padded decimal number that grows by one with every event
// (continuing after the highest one found on start), so the names sort
// oldest first. A file is written to <seq>.ev.tmp, fsynced and renamed, and
// the folder fsynced, before the event is handed to MQTT; it is removed once
// the broker acknowledged the QoS 1 publish. Its content is one header line
// and the encoded envelope exactly as published:
//
//	loa-event 1 <crc32 IEEE of the payload, 8 hex digits> <final: 0|1> <payload length>\n
//	<payload>
//
// A record whose header, length or checksum does not match is logged and
// removed; leftover .tmp files (a power cut mid-write) are removed on start.
const (
	outboxDirName   = "outbox"
	outboxSuffix    = ".ev"
	outboxMagic     = "loa-event"
	outboxVersion   = "1"
	outboxMaxEvents = 10000
	outboxMaxBytes  = 10 << 20
)

// outboxRecord is one event held on disk.
type outboxRecord struct {
	id      uint64
	final   bool // a final event (played, failed, ...) is dropped last
	size    int64
	payload []byte // nil once handed to MQTT, to keep memory small
	// inFlight is set while the event waits in the MQTT queue or in paho
	// for the broker's acknowledgement; it is cleared when that fails, so
	// the next connect sends it again.
	inFlight bool
}

// diskOutbox keeps answer-back events on disk until the broker has them. It
// is used by the loop (add, pending), the outbox worker (watch) and the
// acknowledgement watchers; a mutex guards it.
type diskOutbox struct {
	dir       string
	log       *slog.Logger
	maxEvents int
	maxBytes  int64

	mu    sync.Mutex
	recs  []*outboxRecord // oldest first
	bytes int64
	next  uint64

	wg   sync.WaitGroup // acknowledgement watchers
	stop chan struct{}
}

// openDiskOutbox creates dir if needed and loads the events in it, oldest
// first. Corrupt records are logged and removed; they do not stop the box.
func openDiskOutbox(dir string, log *slog.Logger) (*diskOutbox, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create outbox folder: %w", err)
	}
	o := &diskOutbox{dir: dir, log: log, maxEvents: outboxMaxEvents, maxBytes: outboxMaxBytes, next: 1, stop: make(chan struct{})}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read outbox folder: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(dir, name)
		if strings.HasSuffix(name, tmpSuffix) {
			os.Remove(path)
			continue
		}
		id, ok := parseOutboxName(name)
		if !ok {
			continue // not ours
		}
		o.next = max(o.next, id+1)
		rec, err := readOutboxRecord(path)
		if err != nil {
			log.Warn("skipping corrupt outbox record", "file", path, keyErr, err)
			os.Remove(path)
			continue
		}
		rec.id = id
		o.recs = append(o.recs, rec)
		o.bytes += rec.size
	}
	slices.SortFunc(o.recs, func(x, y *outboxRecord) int { return compareUint(x.id, y.id) })
	return o, nil
}

func compareUint(x, y uint64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func outboxName(id uint64) string { return fmt.Sprintf("%020d%s", id, outboxSuffix) }

func parseOutboxName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, outboxSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	return id, err == nil
}

var errCorruptRecord = errors.New("corrupt outbox record")

// encodeOutboxRecord is the file content for payload.
func encodeOutboxRecord(payload []byte, final bool) []byte {
	f := "0"
	if final {
		f = "1"
	}
	head := fmt.Sprintf("%s %s %08x %s %d\n", outboxMagic, outboxVersion, crc32.ChecksumIEEE(payload), f, len(payload))
	return append([]byte(head), payload...)
}

// decodeOutboxRecord checks and parses a file's content.
func decodeOutboxRecord(data []byte) (*outboxRecord, error) {
	head, payload, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("%w: no header", errCorruptRecord)
	}
	f := strings.Fields(string(head))
	if len(f) != 5 || f[0] != outboxMagic || f[1] != outboxVersion || (f[3] != "0" && f[3] != "1") {
		return nil, fmt.Errorf("%w: bad header %q", errCorruptRecord, head)
	}
	sum, err := strconv.ParseUint(f[2], 16, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: bad checksum field", errCorruptRecord)
	}
	n, err := strconv.Atoi(f[4])
	if err != nil || n != len(payload) {
		return nil, fmt.Errorf("%w: %d payload bytes, header says %s", errCorruptRecord, len(payload), f[4])
	}
	if crc32.ChecksumIEEE(payload) != uint32(sum) {
		return nil, fmt.Errorf("%w: checksum mismatch", errCorruptRecord)
	}
	return &outboxRecord{final: f[3] == "1", size: int64(len(data)), payload: payload}, nil
}

func readOutboxRecord(path string) (*outboxRecord, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeOutboxRecord(data)
}

func (o *diskOutbox) path(id uint64) string { return filepath.Join(o.dir, outboxName(id)) }

// add writes payload durably and returns its record id, marked in flight:
// the caller hands it to MQTT next. When the outbox is full the oldest
// non-final events are dropped first. A write failure is returned; the
// caller still sends the event, from memory only.
func (o *diskOutbox) add(payload []byte, final bool) (uint64, error) {
	data := encodeOutboxRecord(payload, final)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.makeRoom(int64(len(data)))
	id := o.next
	o.next++
	if err := atomicfile.Write(o.path(id), data, 0o600); err != nil {
		return 0, fmt.Errorf("outbox: %w", err)
	}
	o.recs = append(o.recs, &outboxRecord{id: id, final: final, size: int64(len(data)), inFlight: true})
	o.bytes += int64(len(data))
	return id, nil
}

// makeRoom drops events until one of size more fits. o.mu is held.
func (o *diskOutbox) makeRoom(size int64) {
	for len(o.recs) > 0 && (len(o.recs)+1 > o.maxEvents || o.bytes+size > o.maxBytes) {
		i := slices.IndexFunc(o.recs, func(r *outboxRecord) bool { return !r.final })
		if i < 0 {
			i = 0
		}
		r := o.recs[i]
		o.log.Warn("outbox full; dropping an unsent event", "record", outboxName(r.id), "final", r.final,
			"events", len(o.recs), keyBytes, o.bytes)
		o.dropLocked(i)
	}
}

func (o *diskOutbox) dropLocked(i int) {
	r := o.recs[i]
	if err := os.Remove(o.path(r.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		o.log.Warn("remove outbox record", keyErr, err)
	}
	o.bytes -= r.size
	o.recs = slices.Delete(o.recs, i, i+1)
}

// remove deletes a record the broker acknowledged.
func (o *diskOutbox) remove(id uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if i := o.index(id); i >= 0 {
		o.dropLocked(i)
	}
}

// retry marks a record as no longer in flight: it is sent again on the next
// connect.
func (o *diskOutbox) retry(id uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if i := o.index(id); i >= 0 {
		o.recs[i].inFlight = false
	}
}

func (o *diskOutbox) index(id uint64) int {
	i, ok := slices.BinarySearchFunc(o.recs, id, func(r *outboxRecord, id uint64) int { return compareUint(r.id, id) })
	if !ok {
		return -1
	}
	return i
}

// pendingEvent is an event to hand to MQTT again.
type pendingEvent struct {
	id      uint64
	payload []byte
}

// takePending returns the events on disk that are not in flight, oldest
// first, and marks them in flight. A record that can no longer be read is
// logged and removed.
func (o *diskOutbox) takePending() []pendingEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []pendingEvent
	for i := 0; i < len(o.recs); i++ {
		r := o.recs[i]
		if r.inFlight {
			continue
		}
		payload := r.payload
		if payload == nil {
			rec, err := readOutboxRecord(o.path(r.id))
			if err != nil {
				o.log.Warn("skipping corrupt outbox record", "file", o.path(r.id), keyErr, err)
				o.dropLocked(i)
				i--
				continue
			}
			payload = rec.payload
		}
		r.payload = nil
		r.inFlight = true
		out = append(out, pendingEvent{id: r.id, payload: payload})
	}
	return out
}

// len is how many events wait on disk.
func (o *diskOutbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.recs)
}

// watch removes records ids once tok completes without error (one publish
// may carry several events), and marks them for sending again if it fails.
// It returns at once; the watcher ends when the token completes or close is
// called.
func (o *diskOutbox) watch(ids []uint64, tok mqtt.Token) {
	o.wg.Go(func() {
		select {
		case <-tok.Done():
		case <-o.stop:
			select {
			case <-tok.Done():
			default:
				return // still unacknowledged: they stay on disk
			}
		}
		for _, id := range ids {
			if err := tok.Error(); err != nil {
				o.log.Debug("event publish not confirmed; kept in the outbox", "record", outboxName(id), keyErr, err)
				o.retry(id)
				continue
			}
			o.remove(id)
		}
	})
}

// close ends the watchers; what is unacknowledged stays on disk.
func (o *diskOutbox) close() {
	close(o.stop)
	o.wg.Wait()
}
