// Command transcode is the agent's cache step alone, to measure its peak
// memory: it transcodes a media file into 48 kHz stereo PCM in a file
// through a 64 KiB buffer, as device/media.go does, then prints the
// process's peak resident set size (VmHWM, Linux).
//
//	transcode IN OUT
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/loa-commune/loa/audio"
	_ "github.com/loa-commune/loa/audio/opus"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "transcode:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: transcode IN OUT")
	}
	src, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := os.Create(args[1])
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	info, err := audio.Transcode(src, audio.DefaultFormat, bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	hwm, err := peakRSS()
	if err != nil {
		return err
	}
	fmt.Printf("frames=%d duration=%s vmhwm_kb=%d\n", info.Frames, info.Duration, hwm)
	return nil
}

// peakRSS reads VmHWM, in kB, from /proc/self/status.
func peakRSS() (int, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(status) {
		if rest, ok := strings.CutPrefix(string(line), "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
