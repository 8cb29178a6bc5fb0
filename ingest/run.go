package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds on what one ffmpeg run may print; past them the middle is dropped
// (errors come first, loudnorm's report last).
const (
	outputHead = 256 << 10
	outputTail = 64 << 10
)

// output is what a run printed, bounded.
type output struct {
	stdout, stderr []byte
}

// run runs prog with args in its own process group, with the Pipeline's
// deadline and address-space limit, and returns what it printed. A run past
// the deadline is killed with everything it started and gives ErrTimeout.
func (p *Pipeline) run(ctx context.Context, prog string, args ...string) (output, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	cmd := Command(ctx, prog, args...)
	var stdout, stderr boundedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := Start(cmd, p.opts.MemoryMB); err != nil {
		return output{}, err
	}
	err := cmd.Wait()
	KillGroup(cmd)
	out := output{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	if ctx.Err() == context.DeadlineExceeded {
		return out, fmt.Errorf("%w: stopped after %v", ErrTimeout, p.opts.Timeout)
	}
	if err != nil {
		return out, err
	}
	return out, nil
}

// Command returns a command for prog that runs in its own process group:
// when ctx ends the whole group is killed (SIGKILL), and a child that kept
// the pipes open holds Wait at most 2 s. Start it with Start.
func Command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A child that kept the pipes open must not hold the call.
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Start starts cmd (from Command) and limits its address space to
// memoryMB. A program that cannot start gives ErrNoFFmpeg.
func Start(cmd *exec.Cmd, memoryMB int) error {
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("%w: %s not found", ErrNoFFmpeg, cmd.Args[0])
		}
		return fmt.Errorf("%w: start %s: %v", ErrNoFFmpeg, cmd.Args[0], err)
	}
	// Set right after the start: ffmpeg spends its first milliseconds
	// loading libraries, before it reads a byte of the file.
	limit := uint64(memoryMB) << 20
	_ = unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_AS, &unix.Rlimit{Cur: limit, Max: limit}, nil)
	return nil
}

// KillGroup kills whatever a started command left behind in its process
// group (a no-op when nothing is left); call it after Wait.
func KillGroup(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }

// boundedBuffer keeps the first outputHead and the last outputTail bytes
// written to it.
type boundedBuffer struct {
	head    bytes.Buffer
	tail    []byte
	dropped bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := outputHead - b.head.Len(); room > 0 {
		k := min(room, len(p))
		b.head.Write(p[:k])
		p = p[k:]
	}
	if len(p) > 0 {
		b.tail = append(b.tail, p...)
		if over := len(b.tail) - outputTail; over > 0 {
			b.tail = append(b.tail[:0], b.tail[over:]...)
			b.dropped = true
		}
	}
	return n, nil
}

// Bytes returns what was kept; a dropped middle becomes a line break, so
// line-based parsing stays sound.
func (b *boundedBuffer) Bytes() []byte {
	out := append([]byte(nil), b.head.Bytes()...)
	if b.dropped {
		out = append(out, '\n')
	}
	return append(out, b.tail...)
}
