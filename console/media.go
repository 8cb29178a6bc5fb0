package console

import (
	"mime/multipart"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
)

// mediaPage is the library: every recording with how long and how loud it
// is, and the file the boxes download.
type mediaPage struct {
	Rows []mediaRow
	// Accept is what the file chooser offers (the API reads any audio
	// ffmpeg reads; these are the usual ones).
	Accept string
	Name   string // the name typed, kept when an upload is refused
}

// mediaRow is one recording as the page shows it.
type mediaRow struct {
	ID, ShortID, Name, Codec, Size string
	Duration                       string
	Loudness, Peak                 string
	Play                           string // the rendition: codec, size, loudness; "" while it is made
	Created                        time.Time
}

const mediaAccept = "audio/*,.mp3,.m4a,.aac,.mp4,.wav,.ogg,.oga,.opus,.flac,.amr,.3gp,.webm,.wma"

func (c *Console) mediaPage(q *request) error {
	return c.renderMedia(q, q.view("console.media.title"), http.StatusOK, "")
}

// renderMedia draws the library with v's notice or error.
func (c *Console) renderMedia(q *request, v *view, status int, name string) error {
	list, err := q.api.Media(q.r.Context())
	if err != nil {
		return err
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].CreatedAt.After(list[j].CreatedAt) })
	d := &mediaPage{Accept: mediaAccept, Name: name}
	for _, m := range list {
		d.Rows = append(d.Rows, mediaRowOf(q.lang, m))
	}
	if q.r.Method == http.MethodGet {
		v.Notice = mediaNotice(q, d.Rows)
	}
	v.Data = d
	c.render(q.w, status, "media", v)
	return nil
}

// mediaNotice says what the last upload or deletion did (the page it
// redirected to names it).
func mediaNotice(q *request, rows []mediaRow) string {
	name := func(id string) string {
		for _, r := range rows {
			if r.ID == id {
				return r.Name
			}
		}
		return messages.Short(id)
	}
	switch f := q.r.FormValue; {
	case f("added") != "":
		return messages.In(q.lang, messages.ConsoleMediaAdded, name(f("added")))
	case f("existed") != "":
		return messages.In(q.lang, messages.ConsoleMediaExisted, name(f("existed")))
	case f("deleted") != "":
		return messages.In(q.lang, messages.ConsoleMediaDeleted)
	}
	return ""
}

func mediaRowOf(lang string, m api.MediaInfo) mediaRow {
	r := mediaRow{ID: m.ID, Name: m.Name, Codec: m.Codec, Size: byteSize(lang, m.Size), Created: m.CreatedAt,
		Duration: clockLength(time.Duration(m.DurationMS) * time.Millisecond), Loudness: "—", Peak: "—"}
	r.ShortID = m.ID
	if len(r.ShortID) > 12 {
		r.ShortID = r.ShortID[:12]
	}
	if r.Name == "" {
		r.Name = r.ShortID
	}
	if m.LoudnessLUFS != nil {
		r.Loudness = decimal(lang, *m.LoudnessLUFS, 1) + " LUFS"
	}
	if m.TruePeakDBTP != nil {
		r.Peak = decimal(lang, *m.TruePeakDBTP, 1) + " dBTP"
	}
	if p := m.Play; p != nil {
		parts := []string{p.Codec, byteSize(lang, p.Size)}
		if p.LoudnessLUFS != nil {
			parts = append(parts, decimal(lang, *p.LoudnessLUFS, 1)+" LUFS")
		}
		r.Play = strings.Join(parts, " · ")
	}
	return r
}

// uploadMedia stores the chosen file under the name typed (else the
// file's own name); the API reads, measures and renders it.
func (c *Console) uploadMedia(q *request) error {
	name := strings.TrimSpace(q.r.PostFormValue("name"))
	again := func(status int, msg string) error {
		v := q.view("console.media.title")
		v.Error = msg
		return c.renderMedia(q, v, status, name)
	}
	var fh *multipart.FileHeader
	if mf := q.r.MultipartForm; mf != nil && len(mf.File["file"]) > 0 {
		fh = mf.File["file"][0]
	}
	if fh == nil {
		return again(http.StatusBadRequest, messages.In(q.lang, messages.ConsoleMediaNoFile))
	}
	if name == "" {
		base := filepath.Base(strings.ReplaceAll(fh.Filename, `\`, "/"))
		name = strings.TrimSuffix(base, filepath.Ext(base))
	}
	f, err := fh.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := q.api.AddMedia(q.r.Context(), name, f)
	if err != nil {
		if status, msg, ok := formProblem(err); ok {
			return again(status, msg)
		}
		return err
	}
	c.log.Info("console: media added", "media", info.ID, "name", name, "existed", info.Existed, "token", q.sess.name)
	p := "added"
	if info.Existed {
		p = "existed"
	}
	http.Redirect(q.w, q.r, "/media?"+url.Values{p: {info.ID}}.Encode(), http.StatusSeeOther)
	return nil
}

// deleteMedia deletes a recording; the API refuses one a rule still plays,
// and the page says which.
func (c *Console) deleteMedia(q *request) error {
	id := q.r.PathValue("id")
	if err := q.api.RemoveMedia(q.r.Context(), id); err != nil {
		if status, msg, ok := formProblem(err); ok {
			v := q.view("console.media.title")
			v.Error = msg
			return c.renderMedia(q, v, status, "")
		}
		return err
	}
	c.log.Info("console: media deleted", "media", id, "token", q.sess.name)
	http.Redirect(q.w, q.r, "/media?deleted=1", http.StatusSeeOther)
	return nil
}
