package timesource

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// DefaultNITZTimeout bounds one mmcli call: ModemManager may wait for a
// modem that does not answer.
const DefaultNITZTimeout = 5 * time.Second

// Modem is the cellular network's time (NITZ: the time 3G/4G networks send
// to phones) as ModemManager's mmcli reports it:
//
//	mmcli -m any --time -K
//	modem.time.current : 2026-03-02T13:00:00+07:00
//
// It is ErrAbsent when mmcli is not installed, and ErrNoTime when there is
// no modem or it has no network time.
type Modem struct {
	// Command is mmcli's name or path; "mmcli" (looked up in PATH) when
	// empty.
	Command string
	// Modem is mmcli's -m argument; "any" when empty.
	Modem string
	// Timeout bounds the call; DefaultNITZTimeout when zero.
	Timeout time.Duration
}

var _ Reader = (*Modem)(nil)

// Read runs mmcli once.
func (m *Modem) Read(ctx context.Context) (Reading, error) {
	cmd := m.Command
	if cmd == "" {
		cmd = "mmcli"
	}
	path, err := exec.LookPath(cmd)
	if err != nil {
		return Reading{}, fmt.Errorf("nitz: %s: %w", cmd, ErrAbsent)
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = DefaultNITZTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	modem := m.Modem
	if modem == "" {
		modem = "any"
	}
	c := exec.CommandContext(ctx, path, "-m", modem, "--time", "-K")
	c.WaitDelay = time.Second
	var out, stderr bytes.Buffer
	c.Stdout, c.Stderr = &limited{&out, 64 << 10}, &limited{&stderr, 4 << 10}
	before := time.Now()
	err = c.Run()
	after := time.Now()
	if ctx.Err() != nil {
		return Reading{}, fmt.Errorf("nitz: mmcli did not answer within %v: %w", timeout, ctx.Err())
	}
	if err != nil {
		return Reading{}, fmt.Errorf("nitz: mmcli: %v: %s: %w", err, strings.TrimSpace(stderr.String()), ErrNoTime)
	}
	t, err := ParseMMCLITime(out.Bytes())
	if err != nil {
		return Reading{}, fmt.Errorf("nitz: %w", err)
	}
	// The modem's answer is somewhere in the call: take its middle.
	return Reading{Time: t, Taken: before.Add(after.Sub(before) / 2), Source: NITZ, Exact: true}, nil
}

// ParseMMCLITime reads the network time from mmcli --time output, in its
// key-value form (-K: "modem.time.current : TIME") or as a person sees it
// ("Time | current: TIME"). TIME is ISO 8601 with an offset (+07, +07:00,
// +0700 or Z); without one, modem.timezone.current (minutes east of UTC)
// places it, and without either it is not used.
func ParseMMCLITime(out []byte) (time.Time, error) {
	var current, zone string
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, " : "); ok && strings.HasPrefix(strings.TrimSpace(k), "modem.") {
			switch strings.TrimSpace(k) {
			case "modem.time.current":
				current = strings.TrimSpace(v)
			case "modem.timezone.current":
				zone = strings.TrimSpace(v)
			}
			continue
		}
		// The human form: "  Time |    current: 2026-...", "  Timezone |  current: 420".
		head, rest, ok := strings.Cut(line, "|")
		if !ok {
			continue
		}
		if h := strings.TrimSpace(head); h != "" {
			section = strings.ToLower(h)
		}
		k, v, ok := strings.Cut(rest, ":")
		if !ok || strings.TrimSpace(k) != "current" {
			continue
		}
		switch section {
		case "time":
			current = strings.TrimSpace(v)
		case "timezone":
			zone = strings.TrimSpace(v)
		}
	}
	if current == "" || current == "--" {
		return time.Time{}, fmt.Errorf("mmcli gave no network time: %w", ErrNoTime)
	}
	return parseISOTime(current, zone)
}

// parseISOTime reads mmcli's ISO 8601 time.
func parseISOTime(s, zone string) (time.Time, error) {
	layouts := []string{
		"2006-01-02T15:04:05.999999999Z07:00",
		"2006-01-02T15:04:05.999999999Z0700",
		"2006-01-02T15:04:05.999999999Z07",
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	t, err := time.Parse("2006-01-02T15:04:05.999999999", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("network time %q is not ISO 8601: %w", s, ErrNoTime)
	}
	minutes, err := strconv.Atoi(zone)
	if err != nil || minutes < -15*60 || minutes > 15*60 {
		return time.Time{}, fmt.Errorf("network time %q has no time zone: %w", s, ErrNoTime)
	}
	return t.Add(-time.Duration(minutes) * time.Minute).UTC(), nil
}

// limited is a writer that keeps at most n bytes and drops the rest.
type limited struct {
	b *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
