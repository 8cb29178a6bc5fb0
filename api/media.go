package api

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"

	"github.com/loa-commune/loa/ingest"
	"github.com/loa-commune/loa/media"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

// storeMedia renders and keeps an upload, spoken text or a CAP resource,
// and records it. created is false when the same bytes were stored before.
func (s *Server) storeMedia(ctx context.Context, body io.Reader, name string) (id string, created bool, err error) {
	f, err := s.media.Put(ctx, body, func(sha string) bool {
		_, err := s.store.MediaByID(ctx, sha)
		return err == nil
	})
	if err != nil {
		return "", false, mediaError(err)
	}
	if f.Existed {
		return f.SHA256, false, nil
	}
	m := MediaRecord(f)
	m.Name, m.CreatedAt = name, s.opts.Now().UTC()
	created, err = s.store.AddMedia(ctx, m)
	return f.SHA256, created, err
}

// MediaRecord is what the store keeps of a rendered file (but its name and
// time).
func MediaRecord(f media.File) store.Media {
	res := f.Result
	return store.Media{
		SHA256: f.SHA256, Codec: res.Codec, Size: f.Size, Duration: res.Duration,
		Loudness: finite(res.Source.Integrated), TruePeak: finite(res.Source.TruePeak),
		Play: store.MediaFile{SHA256: f.PlaySHA256, Size: f.PlaySize, Codec: ingest.Codec, Loudness: finite(res.Output.Integrated)},
	}
}

// mediaError says in one sentence why a file cannot be played.
func mediaError(err error) error {
	detail := func(sentinel error) string {
		return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
	}
	switch {
	case errors.Is(err, media.ErrTooBig):
		return fail(http.StatusRequestEntityTooLarge, messages.MediaTooBig, detail(media.ErrTooBig))
	case errors.Is(err, ingest.ErrTooLong):
		return fail(http.StatusUnprocessableEntity, messages.MediaTooLong, detail(ingest.ErrTooLong))
	case errors.Is(err, ingest.ErrSilent):
		return fail(http.StatusUnprocessableEntity, messages.MediaSilent, detail(ingest.ErrSilent))
	case errors.Is(err, ingest.ErrTimeout):
		return fail(http.StatusUnprocessableEntity, messages.MediaTimeout, detail(ingest.ErrTimeout))
	case errors.Is(err, ingest.ErrNotAudio):
		return fail(http.StatusUnprocessableEntity, messages.BadMedia, detail(ingest.ErrNotAudio))
	case errors.Is(err, ingest.ErrNoFFmpeg):
		return fail(http.StatusServiceUnavailable, messages.NoFFmpeg, detail(ingest.ErrNoFFmpeg))
	}
	return err
}

// finite is v, or nil for the -inf of silence (SQLite and JSON have no
// infinities).
func finite(v float64) *float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil
	}
	return &v
}
