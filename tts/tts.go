package tts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Options configure the speech command.
type Options struct {
	// Command is the program and its arguments. {voice}, {speed} and {out}
	// (the file it must write) are replaced; the text arrives on stdin.
	Command  []string      `yaml:"command"`
	Voice    string        `yaml:"voice"`
	Speed    int           `yaml:"speed"` // words per minute
	MaxChars int           `yaml:"max_chars"`
	Timeout  time.Duration `yaml:"timeout"`
}

// DefaultOptions use espeak-ng's Vietnamese voice at a calm pace.
func DefaultOptions() Options {
	return Options{
		Command:  []string{"espeak-ng", "-v", "{voice}", "-s", "{speed}", "-w", "{out}", "--stdin"},
		Voice:    "vi",
		Speed:    140,
		MaxChars: 4000,
		Timeout:  time.Minute,
	}
}

// Errors callers branch on.
var (
	ErrEmpty   = errors.New("the text is empty")
	ErrTooLong = errors.New("the text is too long")
)

// Renderer turns text into an audio file.
type Renderer struct {
	opts Options
}

// New returns a renderer; zero fields of opts take the defaults.
func New(opts Options) *Renderer {
	def := DefaultOptions()
	if len(opts.Command) == 0 {
		opts.Command = def.Command
	}
	if opts.Voice == "" {
		opts.Voice = def.Voice
	}
	if opts.Speed <= 0 {
		opts.Speed = def.Speed
	}
	if opts.MaxChars <= 0 {
		opts.MaxChars = def.MaxChars
	}
	if opts.Timeout <= 0 {
		opts.Timeout = def.Timeout
	}
	return &Renderer{opts: opts}
}

// Render speaks text and returns the audio file the command wrote (a WAV
// file for espeak-ng).
func (r *Renderer) Render(ctx context.Context, text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	switch n := utf8.RuneCountInString(text); {
	case n == 0:
		return nil, ErrEmpty
	case n > r.opts.MaxChars:
		return nil, fmt.Errorf("%w: %d characters, at most %d", ErrTooLong, n, r.opts.MaxChars)
	}
	dir, err := os.MkdirTemp("", "loa-tts-")
	if err != nil {
		return nil, fmt.Errorf("text to speech: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "speech.wav")
	args := make([]string, len(r.opts.Command))
	for i, a := range r.opts.Command {
		a = strings.ReplaceAll(a, "{voice}", r.opts.Voice)
		a = strings.ReplaceAll(a, "{speed}", strconv.Itoa(r.opts.Speed))
		args[i] = strings.ReplaceAll(a, "{out}", out)
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(text)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("text to speech: %s is not installed (on Debian: apt-get install espeak-ng)", args[0])
		}
		return nil, fmt.Errorf("text to speech with %s: %v: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	b, err := os.ReadFile(out)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("text to speech with %s wrote no audio: %s", args[0], strings.TrimSpace(stderr.String()))
	}
	return b, nil
}
