package audio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// playChunk is how much PCM the file and null sinks handle at a time, and so
// how late a paced sink notices a cancelled context at most.
const playChunk = 20 * time.Millisecond

// pump copies whole frames of pcm to write in chunks of playChunk, checking
// ctx between chunks. If paced it runs in real time: it returns when the
// last chunk would have finished playing. It returns the bytes written and
// ctx.Err() if ctx ended first. A partial frame at the end is dropped.
func pump(ctx context.Context, f Format, pcm io.Reader, paced bool, write func([]byte) error) (int64, error) {
	if !validFormat(f) {
		return 0, fmt.Errorf("invalid format %+v", f)
	}
	frame := f.BytesPerFrame()
	chunk := max(int(f.Bytes(playChunk)), frame)
	buf := make([]byte, chunk)
	var total int64
	start := time.Now()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, rerr := io.ReadFull(pcm, buf)
		n -= n % frame
		if n > 0 {
			if err := write(buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if paced && n > 0 {
			wait := time.Until(start.Add(f.Duration(total)))
			if wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					return total, ctx.Err()
				case <-timer.C:
				}
			}
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return total, nil
		case rerr != nil:
			return total, rerr
		}
	}
}

// isCtxErr reports whether err is a context's cancellation or deadline.
func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
