package triggers

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is what a Decision asks for. Start and Cancel are actions; the others
// are notices for the log and the audit trail, asking for nothing.
type Kind string

// Decision kinds.
const (
	// Start: start the emergency in Decision.Action, on behalf of the rule.
	Start Kind = "start"
	// Cancel: cancel the emergency the rule started (CancelOnClear).
	Cancel Kind = "cancel"
	// Clear: the value cleared but the rule does not cancel; the emergency
	// runs on until staff cancel it.
	Clear Kind = "clear"
	// Suppressed: the condition was met again during the cooldown, so
	// nothing starts yet (once per cooldown).
	Suppressed Kind = "suppressed"
	// Stale: no reading of the field for StaleAfter; the state is kept.
	Stale Kind = "stale"
	// Resume: readings came back after a Stale notice.
	Resume Kind = "resume"
)

// Acts reports whether the caller must do something (start or cancel an
// emergency) rather than only record the decision.
func (k Kind) Acts() bool { return k == Start || k == Cancel }

// Decision is what the engine concluded from a reading or the passing of
// time.
type Decision struct {
	Rule   string    `json:"rule"`
	Source string    `json:"source"`
	Field  string    `json:"field"`
	Kind   Kind      `json:"kind"`
	Value  float64   `json:"value"` // the reading behind the decision (the last one for Stale)
	At     time.Time `json:"at"`    // the now passed in
	// Action is, for Start, the emergency to broadcast with its text filled
	// in; for Cancel and Clear, the emergency the rule started. Notices
	// carry none.
	Action Action `json:"action,omitzero"`
	Reason string `json:"reason"` // for people: what was seen, against which line
}

// Phase is where a rule stands.
type Phase string

// Rule phases.
const (
	Armed   Phase = "armed"   // waiting for the condition
	Pending Phase = "pending" // condition met, waiting for For to pass
	Active  Phase = "active"  // started; waiting for the value to clear
	Cooling Phase = "cooling" // not active, and no start allowed until the cooldown ends
)

// RuleState is one rule's state, for display and for carrying an active
// emergency across a controller restart (see Restore).
type RuleState struct {
	Rule         string    `json:"rule"`
	Source       string    `json:"source"`
	Field        string    `json:"field"`
	Phase        Phase     `json:"phase"`
	Stale        bool      `json:"stale,omitempty"`
	StartValue   float64   `json:"start_value,omitempty"` // the value that started the active emergency
	LastValue    *float64  `json:"last_value,omitempty"`
	LastReading  time.Time `json:"last_reading,omitzero"` // when the last reading was observed
	PendingSince time.Time `json:"pending_since,omitzero"`
	StartedAt    time.Time `json:"started_at,omitzero"`
	ClearedAt    time.Time `json:"cleared_at,omitzero"`
}

// ErrUnknownRule is returned by Restore for states of rules the engine does
// not have (a rule removed from the config).
var ErrUnknownRule = errors.New("unknown trigger rule")

// Engine holds the rules and their state. Create it with NewEngine. It is
// safe for concurrent use.
type Engine struct {
	rules    []Rule           // validated copies; never change
	bySource map[string][]int // source → indexes into rules; never changes

	mu    sync.Mutex
	state []ruleState // parallel to rules
}

type ruleState struct {
	active     bool
	action     Action  // of the running emergency, text filled in
	startValue float64 // the value that started it

	pendingSince time.Time // non-zero while the condition holds and no start was made
	startedAt    time.Time
	clearedAt    time.Time
	noted        time.Time // the cooldown end a Suppressed notice was given for

	hasLast    bool
	last       float64
	seen       time.Time // now of the last reading taken
	watchSince time.Time // first Tick, for a sensor never heard from
	stale      bool
	late       time.Time // the "at" of the last reading dropped as late
}

// NewEngine validates rules and returns an engine with every rule armed.
// Rule names must be unique.
func NewEngine(rules []Rule) (*Engine, error) {
	e := &Engine{
		rules:    make([]Rule, len(rules)),
		bySource: make(map[string][]int),
		state:    make([]ruleState, len(rules)),
	}
	names := make(map[string]bool, len(rules))
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("trigger rule %d: %w", i+1, err)
		}
		if names[r.Name] {
			return nil, fmt.Errorf("trigger rule %d: %w", i+1,
				&RuleError{Rule: r.Name, Field: "name", Err: errors.New("another rule has this name")})
		}
		names[r.Name] = true
		e.rules[i] = r.clone()
		e.bySource[r.Source] = append(e.bySource[r.Source], i)
	}
	return e, nil
}

// clone copies r so that the caller's slices and pointers are not shared.
func (r Rule) clone() Rule {
	if r.Above != nil {
		x := *r.Above
		r.Above = &x
	}
	if r.Below != nil {
		x := *r.Below
		r.Below = &x
	}
	r.Action.Groups = slices.Clone(r.Action.Groups)
	return r
}

// Observe takes one reading of source observed at now and returns what it
// decides, in rule order. Rules of other sources, and rules whose field the
// reading lacks, are untouched.
func (e *Engine) Observe(source string, rd Reading, now time.Time) []Decision {
	idx := e.bySource[source]
	if len(idx) == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Decision
	for _, i := range idx {
		r, st := &e.rules[i], &e.state[i]
		v, ok := rd.Values[r.Field]
		if !ok || !finite(v) {
			continue
		}
		if r.StaleAfter > 0 && !rd.At.IsZero() && since(now, rd.At) > r.StaleAfter {
			st.late = rd.At // measured too long ago: as if it never came
			continue
		}
		out = append(out, e.observe(r, st, v, now)...)
	}
	return out
}

// observe moves one rule on by one value.
func (e *Engine) observe(r *Rule, st *ruleState, v float64, now time.Time) []Decision {
	var out []Decision
	note := func(k Kind, act Action, reason string) {
		out = append(out, Decision{Rule: r.Name, Source: r.Source, Field: r.Field, Kind: k,
			Value: v, At: now, Action: act, Reason: reason})
	}
	if st.stale {
		st.stale = false
		ref := st.seen
		if ref.IsZero() {
			ref = st.watchSince
		}
		note(Resume, Action{}, fmt.Sprintf("%s from %s again after %v without", r.Field, r.Source, since(now, ref)))
	}
	st.hasLast, st.last, st.seen, st.late = true, v, now, time.Time{}

	if st.active {
		if r.clears(v) {
			st.active, st.clearedAt, st.pendingSince = false, now, time.Time{}
			reason := fmt.Sprintf("%s %s is %s", r.Field, num(v), r.clearLine())
			if r.CancelOnClear {
				note(Cancel, st.action, reason)
			} else {
				note(Clear, st.action, reason+"; the emergency runs on until staff cancel it (cancel_on_clear is off)")
			}
		}
		return out
	}
	if !r.fires(v) {
		st.pendingSince = time.Time{}
		return out
	}
	if st.pendingSince.IsZero() {
		st.pendingSince = now
	}
	held := since(now, st.pendingSince)
	if held < r.For {
		return out
	}
	if until, left := r.cooldown(st, now); left > 0 {
		if !st.noted.Equal(until) {
			st.noted = until
			note(Suppressed, Action{}, fmt.Sprintf("%s %s is %s again, but the rule is cooling down for another %v",
				r.Field, num(v), r.fireLine(), left))
		}
		return out
	}
	act := r.Action
	act.Text, _ = render(r.Action.Text, r.Field, v) // Validate checked the placeholders
	if act.Repeat == 0 {
		act.Repeat = 1
	}
	st.active, st.action, st.startValue = true, act, v
	st.startedAt, st.pendingSince = now, time.Time{}
	reason := fmt.Sprintf("%s %s is %s", r.Field, num(v), r.fireLine())
	if r.For > 0 {
		reason += fmt.Sprintf(", and has been for %v", held)
	}
	note(Start, act, reason)
	return out
}

// Tick handles what time alone decides: a sensor gone silent for StaleAfter
// yields one Stale notice. Nothing starts or ends on Tick; call it every
// minute or so.
func (e *Engine) Tick(now time.Time) []Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Decision
	for i := range e.rules {
		r, st := &e.rules[i], &e.state[i]
		if r.StaleAfter == 0 {
			continue
		}
		if st.watchSince.IsZero() {
			st.watchSince = now
		}
		ref := st.seen
		if ref.IsZero() {
			ref = st.watchSince
		}
		if st.stale || since(now, ref) <= r.StaleAfter {
			continue
		}
		st.stale = true
		var b strings.Builder
		if st.hasLast {
			fmt.Fprintf(&b, "no %s from %s for %v (last %s)", r.Field, r.Source, since(now, ref), num(st.last))
		} else {
			fmt.Fprintf(&b, "no %s from %s in the %v since watching began", r.Field, r.Source, since(now, ref))
		}
		if !st.late.IsZero() {
			fmt.Fprintf(&b, "; a reading measured at %s was dropped as older than %v: check the sensor's clock",
				st.late.UTC().Format(time.RFC3339), r.StaleAfter)
		}
		if st.active {
			b.WriteString("; the emergency stays on")
		}
		out = append(out, Decision{Rule: r.Name, Source: r.Source, Field: r.Field, Kind: Stale,
			Value: st.last, At: now, Reason: b.String()})
	}
	return out
}

// States returns every rule's state at now, in rule order.
func (e *Engine) States(now time.Time) []RuleState {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]RuleState, len(e.rules))
	for i := range e.rules {
		r, st := &e.rules[i], &e.state[i]
		s := RuleState{Rule: r.Name, Source: r.Source, Field: r.Field, Stale: st.stale,
			LastReading: st.seen, PendingSince: st.pendingSince, StartedAt: st.startedAt, ClearedAt: st.clearedAt}
		switch _, left := r.cooldown(st, now); {
		case st.active:
			s.Phase, s.StartValue = Active, st.startValue
		case left > 0:
			s.Phase = Cooling
		case !st.pendingSince.IsZero():
			s.Phase = Pending
		default:
			s.Phase = Armed
		}
		if st.hasLast {
			x := st.last
			s.LastValue = &x
		}
		out[i] = s
	}
	return out
}

// Restore carries state over a controller restart: for each state of a rule
// the engine has, an Active phase marks the rule's emergency as running
// (started at StartedAt by StartValue), and StartedAt and ClearedAt set the
// cooldown. Other fields are ignored; For starts counting afresh. Call it
// before the first Observe, with states saved from States, and only mark
// active what is still running. States of unknown rules are skipped and
// reported in an error wrapping ErrUnknownRule; the others are applied.
func (e *Engine) Restore(states []RuleState) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var unknown []string
	for _, s := range states {
		i := slices.IndexFunc(e.rules, func(r Rule) bool { return r.Name == s.Rule })
		if i < 0 {
			unknown = append(unknown, strconv.Quote(s.Rule))
			continue
		}
		r, st := &e.rules[i], &e.state[i]
		st.active, st.startedAt, st.clearedAt, st.pendingSince = s.Phase == Active, s.StartedAt, s.ClearedAt, time.Time{}
		st.action, st.startValue = Action{}, 0
		if st.active {
			st.startValue = s.StartValue
			st.action = r.Action
			st.action.Text, _ = render(r.Action.Text, r.Field, s.StartValue)
			if st.action.Repeat == 0 {
				st.action.Repeat = 1
			}
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("restore: %w: %s", ErrUnknownRule, strings.Join(unknown, ", "))
	}
	return nil
}

// fires reports whether v meets the rule's condition.
func (r *Rule) fires(v float64) bool {
	if r.Above != nil {
		return v > *r.Above
	}
	return v < *r.Below
}

// clears reports whether v is past the threshold by more than the
// hysteresis, back on the safe side.
func (r *Rule) clears(v float64) bool {
	if r.Above != nil {
		return v < *r.Above-r.Hysteresis
	}
	return v > *r.Below+r.Hysteresis
}

func (r *Rule) fireLine() string {
	if r.Above != nil {
		return "above " + num(*r.Above)
	}
	return "below " + num(*r.Below)
}

func (r *Rule) clearLine() string {
	switch {
	case r.Above != nil && r.Hysteresis == 0:
		return "below " + num(*r.Above)
	case r.Above != nil:
		return fmt.Sprintf("below %s (%s less hysteresis %s)", num(*r.Above-r.Hysteresis), num(*r.Above), num(r.Hysteresis))
	case r.Hysteresis == 0:
		return "above " + num(*r.Below)
	default:
		return fmt.Sprintf("above %s (%s plus hysteresis %s)", num(*r.Below+r.Hysteresis), num(*r.Below), num(r.Hysteresis))
	}
}

// cooldown returns when the rule may start again and how long that is from
// now; left is zero when it may start now.
func (r *Rule) cooldown(st *ruleState, now time.Time) (until time.Time, left time.Duration) {
	ref := st.startedAt
	if st.clearedAt.After(ref) {
		ref = st.clearedAt
	}
	if ref.IsZero() {
		return time.Time{}, 0
	}
	return ref.Add(r.Cooldown), max(0, r.Cooldown-since(now, ref))
}

// since is now−t, never negative: a clock stepped back does not stretch a
// wait beyond its own length.
func since(now, t time.Time) time.Duration { return max(0, now.Sub(t)) }

func num(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
