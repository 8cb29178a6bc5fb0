package timesource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/loa-commune/loa/internal/atomicfile"
)

// SavedFileName is the saved time's file in the agent's cache folder.
const SavedFileName = "time.saved"

// SavedTime is a time written to a file whenever the box knows the time
// (every sync, at shutdown). After a reboot it is only a lower bound: the
// box was off for an unknown while. Read returns it as a lower bound,
// never as exact; Save replaces the file whole (a power cut leaves the old
// one or the new one).
type SavedTime struct {
	Path string
}

var _ Reader = (*SavedTime)(nil)

// Read returns the saved time as a lower bound. It is ErrAbsent when no
// time was ever saved.
func (s *SavedTime) Read(ctx context.Context) (Reading, error) {
	if err := ctx.Err(); err != nil {
		return Reading{}, err
	}
	b, err := os.ReadFile(s.Path)
	taken := time.Now()
	if errors.Is(err, fs.ErrNotExist) {
		return Reading{}, fmt.Errorf("saved time %s: %w", s.Path, ErrAbsent)
	}
	if err != nil {
		return Reading{}, fmt.Errorf("saved time: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	if err != nil {
		return Reading{}, fmt.Errorf("saved time %s: %q: %w", s.Path, strings.TrimSpace(string(b)), ErrNoTime)
	}
	return Reading{Time: t.UTC(), Taken: taken, Source: Saved, Exact: false}, nil
}

// Save writes t.
func (s *SavedTime) Save(t time.Time) error {
	if err := atomicfile.Write(s.Path, []byte(t.UTC().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		return fmt.Errorf("save the time: %w", err)
	}
	return nil
}
