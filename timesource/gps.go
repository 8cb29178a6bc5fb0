package timesource

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

// DefaultGPSTimeout bounds one GPS read: receivers send their sentences
// once a second.
const DefaultGPSTimeout = 3 * time.Second

// maxNMEALine: NMEA sentences are at most 82 bytes; longer lines are noise.
const maxNMEALine = 256

// GPSReceiver reads a GPS receiver's NMEA sentences from its serial device
// (/dev/ttyAMA0, /dev/ttyUSB0, /dev/serial0), set to the receiver's speed
// beforehand (most send 9600 baud, the serial port's default on a Pi). It
// takes the first RMC with a valid fix, or a ZDA after such an RMC, and
// returns its time as exact (the sentence of a second comes within a few
// hundred milliseconds of it). Sentences with a wrong checksum are skipped.
type GPSReceiver struct {
	// Device is the serial device (or a file of sentences in tests).
	Device string
	// Timeout bounds a read; DefaultGPSTimeout when zero.
	Timeout time.Duration
}

var _ Reader = (*GPSReceiver)(nil)

// Read waits for a sentence with the time and a valid fix.
func (g *GPSReceiver) Read(ctx context.Context) (Reading, error) {
	if g.Device == "" {
		return Reading{}, fmt.Errorf("gps: no device configured: %w", ErrAbsent)
	}
	f, err := os.Open(g.Device)
	if errors.Is(err, fs.ErrNotExist) {
		return Reading{}, fmt.Errorf("gps %s: %w", g.Device, ErrAbsent)
	}
	if err != nil {
		return Reading{}, fmt.Errorf("gps: %w", err)
	}
	defer f.Close()
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = DefaultGPSTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_ = f.SetReadDeadline(deadline) // a terminal can be polled; a plain file never blocks
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stop()
	r, err := readNMEA(ctx, f)
	if err != nil {
		return Reading{}, fmt.Errorf("gps %s: %w", g.Device, err)
	}
	return r, nil
}

// readNMEA reads sentences until one gives the time.
func readNMEA(ctx context.Context, src io.Reader) (Reading, error) {
	br := bufio.NewReaderSize(src, 4096)
	noFix := false // an RMC of this read said the receiver has no fix
	var last error = ErrNMEANoFix
	for {
		if ctx.Err() != nil {
			return Reading{}, fmt.Errorf("no time within the timeout (%v): %w", last, ErrNoTime)
		}
		line, err := readLine(br)
		taken := time.Now()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
				return Reading{}, fmt.Errorf("no time (%v): %w", last, ErrNoTime)
			}
			return Reading{}, err
		}
		nt, err := ParseNMEA(line)
		switch {
		case err == nil && (nt.Fix || !noFix):
			// An RMC with a valid fix; or a ZDA with every field, which
			// receivers fill only once they know the time, unless an RMC
			// said there is no fix.
			return Reading{Time: nt.Time, Taken: taken, Source: GPS, Exact: true}, nil
		case errors.Is(err, ErrNMEANoFix) && isRMC(line):
			noFix = true
			last = err
		case err == nil || errors.Is(err, ErrNMEAOther):
		default:
			last = err
		}
	}
}

// isRMC reports whether line is an RMC sentence.
func isRMC(line string) bool {
	i := strings.IndexByte(line, '$')
	return i >= 0 && len(line) >= i+6 && line[i+3:i+6] == "RMC"
}

// readLine returns the next line, cut to maxNMEALine bytes.
func readLine(br *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			if len(buf) > 0 && errors.Is(err, io.EOF) {
				return string(buf), nil
			}
			return "", err
		}
		if len(buf) < maxNMEALine {
			buf = append(buf, chunk[:min(len(chunk), maxNMEALine-len(buf))]...)
		}
		if !isPrefix {
			return string(buf), nil
		}
	}
}
