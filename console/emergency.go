package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

// tones are the alert tones a box can sound before an emergency.
var tones = []string{"siren", "flood", "storm", "fire", "other"}

// emergencyForm is the emergency page: what was chosen, and the choices.
type emergencyForm struct {
	Villages []string
	Media    []api.MediaInfo
	Tones    []string
	// Chosen values, kept when the form comes back with an error.
	All      bool
	Groups   []string
	MediaID  string
	Text     string
	Tone     string
	Repeat   int
	Exercise bool
	// AllWord is what to type to confirm the whole commune.
	AllWord string
}

func (c *Console) emergencyPage(q *request) error {
	f := &emergencyForm{Tone: "siren", Repeat: 3, AllWord: messages.In(q.lang, messages.ConsoleAllWord)}
	if err := c.emergencyChoices(q, f); err != nil {
		return err
	}
	v := q.view("console.emergency.title")
	v.Data = f
	if id := q.r.FormValue("cancelled"); id != "" {
		v.Notice = messages.In(q.lang, messages.ConsoleEmergencyCancelled, id)
	}
	c.render(q.w, http.StatusOK, "emergency", v)
	return nil
}

// emergencyChoices fills in what the form offers: villages, recordings,
// tones. A sent form needs them only when it comes back with an error.
func (c *Console) emergencyChoices(q *request, f *emergencyForm) error {
	ctx := q.r.Context()
	groups, err := q.api.Groups(ctx)
	if err != nil {
		return err
	}
	if f.Media, err = q.api.Media(ctx); err != nil {
		return err
	}
	f.Tones = tones
	for _, g := range groups {
		f.Villages = append(f.Villages, g.Name)
	}
	return nil
}

// confirmation is what the person must type to sound an emergency on t:
// the villages' names, or the word for the whole commune.
func (f *emergencyForm) confirmation(t store.Targets) string {
	if t.All {
		return f.AllWord
	}
	return strings.Join(t.Groups, ", ")
}

// sameWords compares typed text with the expected confirmation, ignoring
// case and spacing around commas.
func sameWords(typed, want string) bool {
	norm := func(s string) string {
		parts := strings.Split(strings.ToLower(s), ",")
		for i, p := range parts {
			parts[i] = strings.Join(strings.Fields(p), " ")
		}
		return strings.Join(parts, ",")
	}
	return want != "" && norm(typed) == norm(want)
}

// startEmergency sounds an emergency once the person has typed its target;
// a wrong or missing confirmation sends nothing.
func (c *Console) startEmergency(q *request) error {
	f := &emergencyForm{AllWord: messages.In(q.lang, messages.ConsoleAllWord)}
	r := q.r
	f.All = r.PostFormValue("target") == "all"
	f.Groups = r.PostForm["group"]
	f.MediaID, f.Text = r.PostFormValue("media"), strings.TrimSpace(r.PostFormValue("text"))
	f.Tone, f.Exercise = r.PostFormValue("tone"), r.PostFormValue("exercise") != ""
	f.Repeat, _ = strconv.Atoi(r.PostFormValue("repeat"))
	if !slices.Contains(tones, f.Tone) {
		f.Tone = "siren"
	}
	again := func(status int, msg string) error {
		if err := c.emergencyChoices(q, f); err != nil {
			return err
		}
		v := q.view("console.emergency.title")
		v.Data, v.Error = f, msg
		c.render(q.w, status, "emergency", v)
		return nil
	}
	targets := store.Targets{All: f.All}
	if !f.All {
		targets.Groups = f.Groups
	}
	if !targets.All && len(targets.Groups) == 0 {
		return again(http.StatusBadRequest, messages.In(q.lang, messages.NoTarget))
	}
	if want := f.confirmation(targets); !sameWords(r.PostFormValue("confirm"), want) {
		return again(http.StatusBadRequest, messages.In(q.lang, messages.ConsoleNotConfirmed, want))
	}
	a, err := q.api.StartEmergency(r.Context(), api.AnnounceRequest{Targets: targets, Media: f.MediaID, Text: f.Text,
		Tone: f.Tone, Repeat: f.Repeat, Exercise: f.Exercise})
	if err != nil {
		if ae, ok := err.(*api.APIError); ok && ae.Status < 500 && ae.Status != http.StatusUnauthorized {
			return again(ae.Status, ae.Message)
		}
		return err
	}
	c.log.Info("console: emergency started", "id", a.ID, "token", q.sess.name, "targets", targets.String(), "exercise", f.Exercise)
	http.Redirect(q.w, r, "/announcements/"+url.PathEscape(a.ID), http.StatusSeeOther)
	return nil
}

// cancelEmergency cancels one active emergency (the banner's button).
func (c *Console) cancelEmergency(q *request) error {
	id := q.r.PostFormValue("id")
	if _, err := q.api.CancelEmergency(q.r.Context(), id); err != nil {
		return err
	}
	c.log.Info("console: emergency cancelled", "id", id, "token", q.sess.name)
	http.Redirect(q.w, q.r, "/emergency?cancelled="+url.QueryEscape(id), http.StatusSeeOther)
	return nil
}
