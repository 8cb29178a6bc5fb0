package cap

import (
	"fmt"
	"mime"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Action is what the controller should do with an alert.
type Action string

// Actions.
const (
	Start  Action = "start"  // start a new emergency under Key
	Update Action = "update" // start Key and stop the emergencies in Replaces
	Cancel Action = "cancel" // stop the emergencies in Replaces
	Ignore Action = "ignore" // do nothing; Reason says why
)

// Decision is what Decide makes of an alert.
type Decision struct {
	Action Action `json:"action"`
	// Reason says why an alert is ignored, or why an Update became a Cancel.
	Reason string `json:"reason,omitempty"`
	// Key is the emergency's stable key, "sender,identifier".
	Key string `json:"key"`
	// Replaces lists the keys of the earlier alerts an Update or Cancel
	// refers to (never Key itself). The controller may know none of them.
	Replaces []string `json:"replaces,omitempty"`
	// Exercise marks Exercise and Test alerts that are to be played.
	Exercise bool `json:"exercise,omitempty"`
	// Groups and All are the loudspeakers to reach; Groups is empty when All.
	Groups []string `json:"groups,omitempty"`
	All    bool     `json:"all,omitempty"`
	// Tone is the alert tone to sound before (protocol.Tone*); empty for a Cancel.
	Tone string `json:"tone,omitempty"`
	// Text is headline (or event), description and instruction, to speak
	// when there is no Audio and to log.
	Text     string `json:"text,omitempty"`
	Language string `json:"language,omitempty"`
	// Audio is an audio/* resource to play instead of speaking Text:
	// embedded (Data) or to fetch from URI (http or https; check it
	// with VerifyDigest and against MaxResourceBytes).
	Audio *Resource `json:"audio,omitempty"`
	// Effective is when the info takes effect (its <effective>, else the
	// alert's <sent>); Expires is when it ends, zero if it does not say.
	Effective time.Time `json:"effective,omitzero"`
	Expires   time.Time `json:"expires,omitzero"`
	// What the alert was, for logs and the reply.
	Sender     string    `json:"sender"`
	Identifier string    `json:"identifier"`
	Sent       time.Time `json:"sent"`
	Status     Status    `json:"status"`
	MsgType    MsgType   `json:"msg_type"`
	Event      string    `json:"event,omitempty"`
	Severity   Severity  `json:"severity,omitempty"`
	Urgency    Urgency   `json:"urgency,omitempty"`
	Certainty  Certainty `json:"certainty,omitempty"`
	// Warnings are things worth logging that did not stop the decision
	// (an info block skipped, a resource too large, ...).
	Warnings []string `json:"warnings,omitempty"`
}

// ReasonNoArea is the Reason of an alert none of whose areas is mapped to
// a group (the controller answers 422 with it).
const ReasonNoArea = "no area of this alert is mapped to a group"

// Decide says what to do with a valid alert at time now under cfg:
//
//   - Status System and Draft, msgType Ack and Error: Ignore. Exercise and
//     Test: Ignore or, with "play", go on with Exercise set.
//   - The info blocks used are those in the first language of
//     cfg.Languages that the alert has, else those in the language of the
//     first block.
//   - Cancel: Cancel the referenced alerts (thresholds, areas and expiry
//     do not matter); Ignore if it references none.
//   - Alert and Update: an error wrapping ErrExpired if every block used has
//     expired; Ignore if none reaches both thresholds or none has a mapped
//     area (Reason ReasonNoArea). An Update that would be ignored so becomes
//     a Cancel of what it updates. Otherwise Start (Alert) or Update, with
//     the groups of every block that qualifies and the words, tone and
//     audio of the most severe, then most urgent, of them.
//
// An invalid alert or config is an error too.
func Decide(a *Alert, cfg Config, now time.Time) (Decision, error) {
	if err := a.Validate(); err != nil {
		return Decision{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Decision{}, err
	}
	cfg = cfg.withDefaults()
	d := Decision{Key: a.Key(), Sender: a.Sender, Identifier: a.Identifier, Sent: a.Sent,
		Status: a.Status, MsgType: a.MsgType}

	switch a.Status {
	case StatusActual:
	case StatusExercise, StatusTest:
		d.Exercise = true
		mode, field := cfg.Exercise, "exercise"
		if a.Status == StatusTest {
			mode, field = cfg.Test, "test"
		}
		if mode == ModeIgnore {
			return d.ignore("%s alerts are ignored (cap %s: ignore)", a.Status, field), nil
		}
	default:
		return d.ignore("status %s is not for the public", a.Status), nil
	}
	if a.MsgType == MsgAck || a.MsgType == MsgError {
		return d.ignore("msgType %s carries no warning", a.MsgType), nil
	}
	if a.MsgType == MsgUpdate || a.MsgType == MsgCancel {
		seen := map[string]bool{d.Key: true}
		for _, r := range a.References {
			if k := r.Key(); !seen[k] {
				seen[k] = true
				d.Replaces = append(d.Replaces, k)
			}
		}
	}

	lang, used := pickInfos(a.Infos, cfg.Languages)
	d.Language = lang
	if a.MsgType == MsgCancel {
		return d.cancel(a, used, cfg), nil
	}
	if len(used) == 0 {
		return d.ignore("the alert has no info block"), nil
	}

	var live []int
	for _, i := range used {
		if exp := a.Infos[i].Expires; exp.IsZero() || exp.After(now) {
			live = append(live, i)
		} else {
			d.warn("info[%d] (%s) expired at %s", i, a.Infos[i].Language, formatTime(exp))
		}
	}
	if len(live) == 0 {
		i := used[0]
		return Decision{}, &Error{Path: fmt.Sprintf("info[%d].expires", i), kinds: []error{ErrExpired},
			Msg: fmt.Sprintf("the alert expired at %s; it is now %s", formatTime(a.Infos[i].Expires), formatTime(now))}
	}

	var passing []int
	for _, i := range live {
		in := &a.Infos[i]
		if in.Severity.rank() >= cfg.MinSeverity.rank() && in.Urgency.rank() >= cfg.MinUrgency.rank() {
			passing = append(passing, i)
		}
	}
	if len(passing) == 0 {
		in := &a.Infos[live[0]]
		d.describe(in)
		return d.updateEnds(a, live, cfg, fmt.Sprintf("severity %s and urgency %s do not reach the thresholds (at least %s and %s)",
			in.Severity, in.Urgency, cfg.MinSeverity, cfg.MinUrgency)), nil
	}

	var mapped []int
	for _, i := range passing {
		if groups, all := areaTargets(&a.Infos[i], cfg.Areas); all || len(groups) > 0 {
			mapped = append(mapped, i)
		}
	}
	if len(mapped) == 0 {
		d.describe(&a.Infos[passing[0]])
		return d.updateEnds(a, live, cfg, ReasonNoArea), nil
	}

	chosen := mapped[0]
	for _, i := range mapped[1:] {
		in, best := &a.Infos[i], &a.Infos[chosen]
		if in.Severity.rank() > best.Severity.rank() ||
			in.Severity.rank() == best.Severity.rank() && in.Urgency.rank() > best.Urgency.rank() {
			chosen = i
		}
	}
	if len(mapped) > 1 {
		d.warn("%d info blocks in %s apply; their areas are merged and info[%d] is played", len(mapped), lang, chosen)
	}
	in := &a.Infos[chosen]
	d.Action = Start
	if a.MsgType == MsgUpdate {
		d.Action = Update
	}
	d.describe(in)
	d.Tone = toneFor(in, cfg.EventTones)
	d.Effective = in.Effective
	if d.Effective.IsZero() {
		d.Effective = a.Sent
	}
	order := append([]int{chosen}, slices.DeleteFunc(slices.Clone(mapped), func(i int) bool { return i == chosen })...)
	d.target(a, order, cfg)
	d.Audio = d.pickAudio(a, order, cfg.MaxResourceBytes)
	for n, i := range mapped {
		exp := a.Infos[i].Expires
		if exp.IsZero() {
			d.Expires = time.Time{}
			break
		}
		if n == 0 || exp.After(d.Expires) {
			d.Expires = exp
		}
	}
	return d, nil
}

// cancel decides on a Cancel: the earlier alerts stop; the groups, words
// and audio of its info blocks (if any) are there for an all-clear.
func (d Decision) cancel(a *Alert, used []int, cfg Config) Decision {
	if len(d.Replaces) == 0 {
		return d.ignore("the cancel references no earlier alert")
	}
	d.Action = Cancel
	if len(used) > 0 {
		d.describe(&a.Infos[used[0]])
		d.Expires = a.Infos[used[0]].Expires
		d.target(a, used, cfg)
		d.Audio = d.pickAudio(a, used, cfg.MaxResourceBytes)
	}
	return d
}

// updateEnds ignores an alert for reason, or for an Update, cancels what
// it updates: the earlier warning no longer stands. The groups of the
// given info blocks (if mapped) are there for an all-clear.
func (d Decision) updateEnds(a *Alert, infos []int, cfg Config, reason string) Decision {
	if d.MsgType == MsgUpdate && len(d.Replaces) > 0 {
		d.Action = Cancel
		d.Reason = reason + "; the alerts it updates end"
		d.target(a, infos, cfg)
		return d
	}
	d.Replaces = nil
	return d.ignore("%s", reason)
}

func (d Decision) ignore(format string, args ...any) Decision {
	d.Action = Ignore
	d.Reason = fmt.Sprintf(format, args...)
	return d
}

func (d *Decision) warn(format string, args ...any) {
	d.Warnings = append(d.Warnings, fmt.Sprintf(format, args...))
}

func (d *Decision) describe(in *Info) {
	d.Event, d.Severity, d.Urgency, d.Certainty = in.Event, in.Severity, in.Urgency, in.Certainty
	d.Text = speech(in)
}

// target sets Groups and All from the areas of the given info blocks.
func (d *Decision) target(a *Alert, infos []int, cfg Config) {
	var groups []string
	all := false
	for _, i := range infos {
		g, al := areaTargets(&a.Infos[i], cfg.Areas)
		groups = append(groups, g...)
		all = all || al
	}
	if all {
		d.All, d.Groups = true, nil
		return
	}
	slices.Sort(groups)
	d.Groups = slices.Compact(groups)
}

// areaTargets returns the groups the info's areas are mapped to, and
// whether one of them means every loudspeaker.
func areaTargets(in *Info, mappings []AreaMapping) (groups []string, all bool) {
	for ai := range in.Areas {
		for _, m := range mappings {
			if m.matches(&in.Areas[ai]) {
				groups = append(groups, m.Groups...)
				all = all || m.All
			}
		}
	}
	return groups, all
}

// pickInfos returns the language to use and the indexes of the info
// blocks in it.
func pickInfos(infos []Info, prefs []string) (string, []int) {
	for _, p := range prefs {
		var idx []int
		for i := range infos {
			if langMatches(infos[i].Language, p) {
				idx = append(idx, i)
			}
		}
		if len(idx) > 0 {
			return infos[idx[0]].Language, idx
		}
	}
	if len(infos) == 0 {
		return "", nil
	}
	var idx []int
	for i := range infos {
		if strings.EqualFold(infos[i].Language, infos[0].Language) {
			idx = append(idx, i)
		}
	}
	return infos[0].Language, idx
}

// langMatches reports whether tag is pref or starts with pref and a hyphen
// ("vi-VN" matches "vi"), ignoring case.
func langMatches(tag, pref string) bool {
	if strings.EqualFold(tag, pref) {
		return true
	}
	return len(tag) > len(pref) && tag[len(pref)] == '-' && strings.EqualFold(tag[:len(pref)], pref)
}

// speech joins headline (or event), description and instruction into
// sentences, with white space collapsed.
func speech(in *Info) string {
	head := in.Headline
	if strings.TrimSpace(head) == "" {
		head = in.Event
	}
	var b strings.Builder
	for _, part := range []string{head, in.Description, in.Instruction} {
		part = strings.Join(strings.Fields(part), " ")
		if part == "" {
			continue
		}
		if b.Len() > 0 {
			if last, _ := utf8.DecodeLastRuneInString(b.String()); strings.ContainsRune(".!?:;…", last) {
				b.WriteString(" ")
			} else {
				b.WriteString(". ")
			}
		}
		b.WriteString(part)
	}
	return b.String()
}

// pickAudio returns the first usable audio resource of the info blocks,
// in order: embedded data, or an http(s) URI, within max bytes.
func (d *Decision) pickAudio(a *Alert, infos []int, max int64) *Resource {
	for _, i := range infos {
		for j, r := range a.Infos[i].Resources {
			where := fmt.Sprintf("info[%d].resource[%d]", i, j)
			mt, _, err := mime.ParseMediaType(r.MimeType)
			if err != nil {
				mt = strings.ToLower(strings.TrimSpace(r.MimeType))
			}
			if !strings.HasPrefix(mt, "audio/") {
				continue
			}
			switch {
			case len(r.Data) > 0:
				if int64(len(r.Data)) > max {
					d.warn("%s: %d bytes is more than max_resource_bytes (%d); skipped", where, len(r.Data), max)
					continue
				}
			case r.URI == "":
				d.warn("%s: no uri and no derefUri; skipped", where)
				continue
			default:
				u, err := url.Parse(r.URI)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					d.warn("%s: uri %q is not an http(s) URL; skipped", where, r.URI)
					continue
				}
				if r.Size > max {
					d.warn("%s: size %d is more than max_resource_bytes (%d); skipped", where, r.Size, max)
					continue
				}
			}
			res := r
			return &res
		}
	}
	return nil
}
