package live

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/internal/atomicfile"
)

// recordFile is the temporary file a recording is written to.
type recordFile interface {
	io.Writer
	Sync() error
	Close() error
}

// createRecordFile makes the temporary file for a recording at path, in
// its folder (so that the rename at the end is atomic).
func createRecordFile(path string) (recordFile, string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, "", err
	}
	return f, f.Name(), nil
}

// recorder writes what a session published as one Ogg Opus stream: the
// frames as they went out, silence packets where the timeline has gaps.
// A failure (a full disk) abandons the recording, never the session.
type recorder struct {
	path, tmp string
	f         recordFile
	w         *audio.OggOpusWriter
	silence   []byte
}

// openRecording starts the recording, when the session has one, at its
// first packet.
func (s *Session) openRecording() {
	if s.cfg.Recording == "" {
		return
	}
	f, tmp, err := s.newRecord(s.cfg.Recording)
	if err != nil {
		s.recordingFailed(fmt.Errorf("create recording: %w", err))
		return
	}
	r := &recorder{path: s.cfg.Recording, tmp: tmp, f: f, silence: audio.OpusSilence(s.channels)}
	// The serial number only tells streams of one file apart.
	r.w, err = audio.NewOggOpusWriter(f, s.channels, s.preSkip, 0x4c6f61, "loa live")
	s.rec = r
	if err != nil {
		s.recordingFailed(err)
	}
}

// record appends published frames.
func (s *Session) record(frames [][]byte) {
	if s.rec == nil {
		return
	}
	for _, f := range frames {
		if err := s.rec.w.WritePacket(f); err != nil {
			s.recordingFailed(err)
			return
		}
	}
}

// recordGap appends samples of silence (a multiple of 20 ms).
func (s *Session) recordGap(samples int64) {
	if s.rec == nil {
		return
	}
	for range samples / silenceSamples {
		if err := s.rec.w.WritePacket(s.rec.silence); err != nil {
			s.recordingFailed(err)
			return
		}
	}
}

// recordingFailed abandons the recording: the temporary file goes (a full
// disk gets its space back), the session goes on.
func (s *Session) recordingFailed(err error) {
	s.log.Error("live: recording abandoned; the session goes on", "path", s.cfg.Recording, "err", err)
	s.abortRecording()
	s.mu.Lock()
	if s.sum.RecordingError == nil {
		s.sum.RecordingError = err
	}
	s.mu.Unlock()
}

// abortRecording removes the temporary file, if any.
func (s *Session) abortRecording() {
	if s.rec == nil {
		return
	}
	s.rec.f.Close()
	os.Remove(s.rec.tmp)
	s.rec = nil
}

// closeRecording completes the recording: the last page, sync, rename. It
// returns the recording's path, or why there is none.
func (s *Session) closeRecording() (string, error) {
	r := s.rec
	if r == nil {
		return "", nil
	}
	err := r.w.Close()
	if err == nil {
		err = r.f.Sync()
	}
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(r.tmp, r.path)
	}
	if err != nil {
		os.Remove(r.tmp)
		s.rec = nil
		err = fmt.Errorf("complete recording: %w", err)
		s.log.Error("live: recording abandoned", "path", r.path, "err", err)
		return "", err
	}
	s.rec = nil
	if err := atomicfile.SyncDir(filepath.Dir(r.path)); err != nil {
		s.log.Warn("live: recording", "err", err)
	}
	return r.path, nil
}
