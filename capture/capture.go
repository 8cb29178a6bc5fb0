package capture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNoCapture wraps every failure to start capturing: no ffmpeg, no such
// microphone, a file that is not sound.
var ErrNoCapture = errors.New("cannot capture sound")

// Options say what to capture and how to encode it.
type Options struct {
	// FFmpeg is the program (default "ffmpeg").
	FFmpeg string
	// Source is a PulseAudio source name ("default" when empty), or
	// "alsa:DEVICE" for an ALSA capture device (e.g. alsa:hw:1).
	Source string
	// File is a recording to send instead, at its own pace ("-": standard
	// input, e.g. a mixer's line-in through arecord).
	File string
	// Stdin is read when File is "-".
	Stdin io.Reader
	// BitrateKbps and Channels of the Opus stream (24 and 1 by default).
	BitrateKbps int
	Channels    int
}

// meterRate is the sample rate of the meter's copy: enough to see the
// level, a hundredth of the work of the real stream.
const meterRate = 8000

// meterChunk is one meter reading's worth of sound.
const meterChunk = 100 * time.Millisecond

// Level is the input's level over one meterChunk, in dBFS (0 is full
// scale; -inf for digital silence).
type Level struct {
	Peak, RMS float64
}

// Capture is a running ffmpeg capture.
type Capture struct {
	cmd    *exec.Cmd
	audio  *bufio.Reader
	meter  io.ReadCloser
	levels chan Level
	stderr bytes.Buffer // ffmpeg's complaints (bounded by ffmpeg's own -loglevel error)
	wg     sync.WaitGroup
	once   sync.Once
}

// Start starts ffmpeg and waits for the first page of its Ogg stream, so a
// missing microphone or an unreadable file is an error here, before any
// session is opened.
func Start(ctx context.Context, o Options) (*Capture, error) {
	if o.FFmpeg == "" {
		o.FFmpeg = "ffmpeg"
	}
	o.BitrateKbps = cmpOr(o.BitrateKbps, 24)
	o.Channels = cmpOr(o.Channels, 1)
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error"}
	switch {
	case o.File == "-":
		args = append(args, "-re", "-i", "pipe:0")
	case o.File != "":
		args = append(args, "-re", "-i", o.File)
	case strings.HasPrefix(o.Source, "alsa:"):
		args = append(args, "-fflags", "nobuffer", "-f", "alsa", "-i", strings.TrimPrefix(o.Source, "alsa:"))
	default:
		src := o.Source
		if src == "" {
			src = "default"
		}
		// A 20 ms fragment: PulseAudio's default buffers half a second.
		args = append(args, "-fflags", "nobuffer", "-f", "pulse", "-fragment_size", "3840", "-i", src)
	}
	args = append(args,
		// The stream: small Ogg pages flushed at once, or the muxer holds
		// a second of sound back.
		"-map", "0:a:0", "-ac", strconv.Itoa(o.Channels), "-c:a", "libopus", "-b:a", strconv.Itoa(o.BitrateKbps)+"k",
		"-frame_duration", "20", "-application", "audio", "-f", "ogg", "-page_duration", "20000", "-flush_packets", "1", "pipe:1",
		// The meter's copy.
		"-map", "0:a:0", "-ac", "1", "-ar", strconv.Itoa(meterRate), "-f", "s16le", "-flush_packets", "1", "pipe:3")
	cmd := exec.CommandContext(ctx, o.FFmpeg, args...)
	c := &Capture{cmd: cmd, levels: make(chan Level, 64)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	cmd.Stderr = &limitedWriter{w: &c.stderr, n: 64 << 10}
	if o.File == "-" {
		cmd.Stdin = o.Stdin
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	mr, mw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.ExtraFiles = []*os.File{mw}
	if err := cmd.Start(); err != nil {
		mr.Close()
		mw.Close()
		return nil, fmt.Errorf("%w: start %s: %v", ErrNoCapture, o.FFmpeg, err)
	}
	mw.Close() // ffmpeg holds its end
	c.audio, c.meter = bufio.NewReaderSize(out, 64<<10), mr
	c.wg.Go(c.readMeter)
	if _, err := c.audio.Peek(27); err != nil { // an Ogg page header
		_ = c.Wait()
		return nil, fmt.Errorf("%w: %s", ErrNoCapture, c.problem("ffmpeg produced no sound"))
	}
	return c, nil
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Audio is the Ogg Opus stream; it ends once ffmpeg has finished.
func (c *Capture) Audio() io.Reader { return c.audio }

// Levels delivers one reading per 100 ms of sound; it is closed when the
// capture ends. Readings are dropped when nobody takes them.
func (c *Capture) Levels() <-chan Level { return c.levels }

// Stop asks ffmpeg to finish: it closes the Ogg stream properly, so the
// controller hears the end of the session, not a broken connection.
func (c *Capture) Stop() {
	if c.cmd.Process != nil {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGINT)
	}
}

// Wait waits for ffmpeg to exit and the meter to drain. Reading Audio to
// its end first is the caller's job (ffmpeg blocks on a full pipe).
func (c *Capture) Wait() error {
	var err error
	c.once.Do(func() {
		err = c.cmd.Wait()
		c.meter.Close()
		c.wg.Wait()
		if err != nil {
			var ee *exec.ExitError
			// 255: ffmpeg stopped by the SIGINT of Stop.
			if errors.As(err, &ee) && ee.ExitCode() == 255 {
				err = nil
			} else {
				err = fmt.Errorf("%w: %s", ErrNoCapture, c.problem(err.Error()))
			}
		}
	})
	return err
}

// problem is ffmpeg's first complaint, or fallback.
func (c *Capture) problem(fallback string) string {
	if line, _, _ := strings.Cut(strings.TrimSpace(c.stderr.String()), "\n"); line != "" {
		return "ffmpeg: " + line
	}
	return fallback
}

// readMeter turns the meter's copy into Levels until it ends.
func (c *Capture) readMeter() {
	defer close(c.levels)
	buf := make([]byte, 2*int(meterRate*meterChunk/time.Second))
	for {
		if _, err := io.ReadFull(c.meter, buf); err != nil {
			return
		}
		select {
		case c.levels <- measure(buf):
		default:
		}
	}
}

// measure is the level of 16-bit little-endian samples.
func measure(b []byte) Level {
	var peak, sum float64
	n := len(b) / 2
	for i := range n {
		v := math.Abs(float64(int16(binary.LittleEndian.Uint16(b[2*i:]))) / 32768)
		peak = math.Max(peak, v)
		sum += v * v
	}
	return Level{Peak: dB(peak), RMS: dB(math.Sqrt(sum / float64(max(n, 1))))}
}

func dB(v float64) float64 { return 20 * math.Log10(v) }

// limitedWriter keeps the first n bytes written.
type limitedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
