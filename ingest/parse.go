package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// progressDuration reads the last out_time_us of ffmpeg's -progress
// report: how much sound it wrote.
func progressDuration(stdout []byte) time.Duration {
	var us int64 = -1
	for line := range strings.Lines(string(stdout)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "out_time_us="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				us = n
			}
		}
	}
	if us < 0 {
		return 0
	}
	return time.Duration(us) * time.Microsecond
}

// inputStream matches ffmpeg's description of an input's sound track:
// "Stream #0:1(und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, ...".
var inputStream = regexp.MustCompile(`Stream #0:\d+[^:]*: Audio: ([A-Za-z0-9_]+)`)

// inputCodec names the codec of the first sound track ffmpeg found in its
// input (what -map 0:a:0 takes): the first match before the output part.
func inputCodec(stderr []byte) string {
	if i := bytes.Index(stderr, []byte("Stream mapping:")); i >= 0 {
		stderr = stderr[:i]
	}
	if m := inputStream.FindSubmatch(stderr); m != nil {
		return string(m[1])
	}
	return ""
}

// loudnormReport is loudnorm's print_format=json block; its values are
// strings ("-16.02", "-inf").
type loudnormReport map[string]string

func (m loudnormReport) float(key string) float64 {
	v, err := strconv.ParseFloat(m[key], 64)
	if err != nil {
		return math.Inf(-1) // "-inf": silence
	}
	return v
}

// loudnormJSON finds loudnorm's report, the last {...} block of stderr.
func loudnormJSON(stderr []byte) (loudnormReport, error) {
	end := bytes.LastIndexByte(stderr, '}')
	start := -1
	if end >= 0 {
		start = bytes.LastIndexByte(stderr[:end], '{')
	}
	if start < 0 {
		return nil, fmt.Errorf("ffmpeg printed no loudness report")
	}
	var m loudnormReport
	if err := json.Unmarshal(stderr[start:end+1], &m); err != nil {
		return nil, fmt.Errorf("read ffmpeg's loudness report: %w", err)
	}
	if _, ok := m["input_i"]; !ok {
		return nil, fmt.Errorf("ffmpeg's loudness report has no input_i")
	}
	return m, nil
}

// problemLines are what ffmpeg prints, with -loglevel level+..., at the
// levels that mean the file did not decode cleanly.
func problemLines(stderr []byte) []string {
	var out []string
	for line := range strings.Lines(string(stderr)) {
		if p, ok := Problem(line); ok {
			out = append(out, p)
		}
	}
	return out
}

// Problem reads one line ffmpeg printed with -loglevel level+...: if it is
// at error level or worse, it returns the message with its source named
// ("tcp: Connection to ... failed: Connection refused").
func Problem(line string) (string, bool) {
	line = strings.TrimSpace(line)
	for _, level := range []string{"[error] ", "[fatal] ", "[panic] "} {
		if i := strings.Index(line, level); i >= 0 {
			return logSource(line[:i]) + strings.TrimSpace(line[i+len(level):]), true
		}
	}
	return "", false
}

// logSource turns ffmpeg's "[ogg @ 0x55...] " into "ogg: ".
func logSource(prefix string) string {
	prefix = strings.TrimSpace(prefix)
	if !strings.HasPrefix(prefix, "[") {
		return ""
	}
	name, _, _ := strings.Cut(strings.Trim(prefix, "[]"), " @ ")
	return name + ": "
}

// decodeErrors fails a run that succeeded but reported damage on the way
// (ffmpeg skips a page that fails its checksum and goes on): a damaged file
// is refused rather than played with a hole.
func decodeErrors(stderr []byte) error {
	if lines := problemLines(stderr); len(lines) > 0 {
		return fmt.Errorf("%w: the file is damaged: ffmpeg: %s", ErrNotAudio, lines[0])
	}
	return nil
}

// firstProblem is the line of a failed run that says why: its first
// error, else its last line.
func firstProblem(stderr []byte) string {
	if lines := problemLines(stderr); len(lines) > 0 {
		return lines[0]
	}
	last := ""
	for line := range strings.Lines(string(stderr)) {
		if l := strings.TrimSpace(line); l != "" {
			last = l
		}
	}
	return last
}
