package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

// getMedia downloads a media file as a box does: HTTP Basic with its id and
// token (no auth when user is "").
func (e *env) getMedia(t *testing.T, id, user, token string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/media/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMediaAddListRemove(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	data := wav(8000, time.Second)
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])

	m, err := e.client.AddMedia(ctx, "họp thôn.wav", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	want := api.MediaInfo{ID: id, Name: "họp thôn.wav", Codec: "pcm_s16le", Size: int64(len(data)), DurationMS: 1000, CreatedAt: e.now.UTC()}
	if m.LoudnessLUFS == nil || m.TruePeakDBTP == nil || m.Play == nil || m.Play.Codec != "opus" || m.Play.Size == 0 ||
		m.Play.LoudnessLUFS == nil || *m.Play.LoudnessLUFS < -17 || *m.Play.LoudnessLUFS > -15 {
		t.Fatalf("media add = %+v (play %+v): want the original's loudness and an Opus rendition at -16 LUFS", m, m.Play)
	}
	playID := m.Play.ID
	m.LoudnessLUFS, m.TruePeakDBTP, m.Play = nil, nil, nil
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("media add = %+v\nwant %+v", m, want)
	}
	files := []string{id, playID}
	slices.Sort(files)
	again, err := e.client.AddMedia(ctx, "other name", bytes.NewReader(data))
	if err != nil || !again.Existed || again.ID != id || again.Name != "họp thôn.wav" {
		t.Fatalf("adding the same file again = %+v, %v", again, err)
	}
	list, err := e.client.Media(ctx)
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("media list %+v, %v", list, err)
	}
	if got := e.mediaFiles(t); !slices.Equal(got, files) {
		t.Fatalf("media folder %v, want the original and its rendition %v", got, files)
	}

	// In use by a schedule: 409, then free once the schedule is gone.
	e.addDevice(t, "loa-1")
	s, err := e.client.AddSchedule(ctx, api.AnnounceRequest{Media: id, Cron: "0 6 * * *", Targets: store.Targets{All: true}})
	if err != nil {
		t.Fatal(err)
	}
	if ae := apiError(t, e.client.RemoveMedia(ctx, id), http.StatusConflict); ae.Code != string(messages.MediaInUse) ||
		ae.Message != "media "+id+" is used by 1 announcement(s) or schedule(s): cancel or remove those first" {
		t.Fatalf("rm in use: %+v", ae)
	}
	if got := e.mediaFiles(t); !slices.Equal(got, files) {
		t.Fatalf("media folder after a refused rm: %v", got)
	}
	if err := e.client.RemoveSchedule(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.client.RemoveMedia(ctx, id); err != nil {
		t.Fatalf("rm: %v", err)
	}
	if list, _ := e.client.Media(ctx); len(list) != 0 {
		t.Fatalf("media list after rm: %+v", list)
	}
	if files := e.mediaFiles(t); len(files) != 0 {
		t.Fatalf("media folder after rm: %v", files)
	}
	ae := apiError(t, e.client.RemoveMedia(ctx, id), http.StatusNotFound)
	if ae.Code != string(messages.UnknownMedia) {
		t.Fatalf("rm twice: %+v", ae)
	}
}

func TestMediaAddRefusesBadFiles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	good := e.addMedia(t, wav(8000, time.Second))
	random := make([]byte, 8192)
	rand.Read(random)
	whole := wav(8000, time.Second)
	tests := []struct {
		name string
		data []byte
	}{
		{"random bytes", random},
		{"empty", nil},
		{"text", []byte("this is not audio\n")},
		{"truncated header", whole[:30]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			beforeList, _ := e.client.Media(ctx)
			beforeFiles := e.mediaFiles(t)
			_, err := e.client.AddMedia(ctx, "bad", bytes.NewReader(tc.data))
			if ae := apiError(t, err, http.StatusUnprocessableEntity); ae.Code != string(messages.BadMedia) {
				t.Fatalf("%+v", ae)
			}
			if after, _ := e.client.Media(ctx); !reflect.DeepEqual(after, beforeList) {
				t.Fatalf("media list changed: %+v", after)
			}
			if after := e.mediaFiles(t); !slices.Equal(after, beforeFiles) {
				t.Fatalf("media folder changed: %v → %v", beforeFiles, after)
			}
		})
	}
	if list, _ := e.client.Media(ctx); len(list) != 1 || list[0].ID != good.ID {
		t.Fatalf("media list %+v", list)
	}
}

func TestMediaDownload(t *testing.T) {
	e := newEnv(t)
	data := wav(8000, time.Second)
	m := e.addMedia(t, data)
	box := e.addDevice(t, "loa-1")
	other := e.addDevice(t, "loa-2")

	resp := e.getMedia(t, m.ID, "loa-1", box.Token, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(readAll(t, resp.Body), data) {
		t.Fatalf("box download: %s", resp.Status)
	}
	if resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("Accept-Ranges %q", resp.Header.Get("Accept-Ranges"))
	}

	// Resuming a download after a cut.
	resp = e.getMedia(t, m.ID, "loa-1", box.Token, http.Header{"Range": {"bytes=100-199"}})
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("range: %s", resp.Status)
	}
	if got := readAll(t, resp.Body); !bytes.Equal(got, data[100:200]) {
		t.Fatalf("range gave %d bytes, not bytes 100-199", len(got))
	}
	if cr := resp.Header.Get("Content-Range"); cr != "bytes 100-199/"+strconv.Itoa(len(data)) {
		t.Fatalf("Content-Range %q", cr)
	}
	resp = e.getMedia(t, m.ID, "loa-1", box.Token, http.Header{"Range": {"bytes=" + strconv.Itoa(len(data)-10) + "-"}})
	if got := readAll(t, resp.Body); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, data[len(data)-10:]) {
		t.Fatalf("open-ended range: %s, %d bytes", resp.Status, len(got))
	}

	// The admin token works too.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/media/"+m.ID, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("admin download: %v %v", r.Status, err)
	} else {
		r.Body.Close()
	}

	refused := []struct {
		name, user, token string
	}{
		{"no credentials", "", ""},
		{"wrong token", "loa-1", strings.Repeat("0", 64)},
		{"another box's token", "loa-1", other.Token},
		{"unknown box", "ghost", box.Token},
		{"empty token", "loa-1", ""},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.getMedia(t, m.ID, tc.user, tc.token, nil)
			body := readAll(t, resp.Body)
			if resp.StatusCode != http.StatusUnauthorized || bytes.Contains(body, data[44:80]) {
				t.Fatalf("%s: %s", tc.name, resp.Status)
			}
		})
	}

	for _, id := range []string{strings.Repeat("0", 64), "../loa.db", "x"} {
		if resp := e.getMedia(t, id, "loa-1", box.Token, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /v1/media/%s: %s, want 404", id, resp.Status)
		}
	}
}
