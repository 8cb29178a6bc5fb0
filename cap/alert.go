package cap

import (
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"
)

// Namespace is the XML namespace of CAP 1.2 documents.
const Namespace = "urn:oasis:names:tc:emergency:cap:1.2"

// MaxSize is the largest document Parse reads, embedded resources included.
const MaxSize = 1 << 20

// Sentinels callers branch on with errors.Is.
var (
	// ErrInvalid: the document is not a valid CAP 1.2 alert (answer 4xx).
	ErrInvalid = errors.New("invalid CAP alert")
	// ErrTooLarge: the document is longer than MaxSize; it also matches ErrInvalid.
	ErrTooLarge = errors.New("CAP alert too large")
	// ErrExpired: the alert's info expired before now.
	ErrExpired = errors.New("CAP alert expired")
)

// Error says what is wrong with an alert and where.
type Error struct {
	Path  string // the element at fault, e.g. "info[0].severity"; empty for the whole document
	Msg   string
	kinds []error // ErrInvalid, ErrTooLarge, ErrExpired
	cause error   // e.g. the *xml.SyntaxError
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "cap: " + e.Msg
	}
	return "cap: " + e.Path + ": " + e.Msg
}

// Unwrap lets errors.Is find the sentinels and the underlying cause.
func (e *Error) Unwrap() []error {
	out := append([]error(nil), e.kinds...)
	if e.cause != nil {
		out = append(out, e.cause)
	}
	return out
}

func invalid(path, format string, args ...any) *Error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...), kinds: []error{ErrInvalid}}
}

// Status is the code for the appropriate handling of an alert.
type Status string

// Statuses.
const (
	StatusActual   Status = "Actual"
	StatusExercise Status = "Exercise"
	StatusSystem   Status = "System"
	StatusTest     Status = "Test"
	StatusDraft    Status = "Draft"
)

// MsgType is the nature of an alert message.
type MsgType string

// Message types.
const (
	MsgAlert  MsgType = "Alert"
	MsgUpdate MsgType = "Update"
	MsgCancel MsgType = "Cancel"
	MsgAck    MsgType = "Ack"
	MsgError  MsgType = "Error"
)

// Scope is the intended distribution of an alert.
type Scope string

// Scopes.
const (
	ScopePublic     Scope = "Public"
	ScopeRestricted Scope = "Restricted"
	ScopePrivate    Scope = "Private"
)

// Category is the kind of subject event of an info block.
type Category string

// Categories.
const (
	CategoryGeo       Category = "Geo"
	CategoryMet       Category = "Met"
	CategorySafety    Category = "Safety"
	CategorySecurity  Category = "Security"
	CategoryRescue    Category = "Rescue"
	CategoryFire      Category = "Fire"
	CategoryHealth    Category = "Health"
	CategoryEnv       Category = "Env"
	CategoryTransport Category = "Transport"
	CategoryInfra     Category = "Infra"
	CategoryCBRNE     Category = "CBRNE"
	CategoryOther     Category = "Other"
)

// ResponseType is the action recommended to the audience.
type ResponseType string

// Response types.
const (
	ResponseShelter  ResponseType = "Shelter"
	ResponseEvacuate ResponseType = "Evacuate"
	ResponsePrepare  ResponseType = "Prepare"
	ResponseExecute  ResponseType = "Execute"
	ResponseAvoid    ResponseType = "Avoid"
	ResponseMonitor  ResponseType = "Monitor"
	ResponseAssess   ResponseType = "Assess"
	ResponseAllClear ResponseType = "AllClear"
	ResponseNone     ResponseType = "None"
)

// Urgency is how soon action is needed.
type Urgency string

// Urgencies, most urgent first.
const (
	UrgencyImmediate Urgency = "Immediate"
	UrgencyExpected  Urgency = "Expected"
	UrgencyFuture    Urgency = "Future"
	UrgencyPast      Urgency = "Past"
	UrgencyUnknown   Urgency = "Unknown"
)

// Severity is how bad the event is.
type Severity string

// Severities, most severe first.
const (
	SeverityExtreme  Severity = "Extreme"
	SeveritySevere   Severity = "Severe"
	SeverityModerate Severity = "Moderate"
	SeverityMinor    Severity = "Minor"
	SeverityUnknown  Severity = "Unknown"
)

// Certainty is how sure the sender is of the event.
type Certainty string

// Certainties, surest first.
const (
	CertaintyObserved Certainty = "Observed"
	CertaintyLikely   Certainty = "Likely"
	CertaintyPossible Certainty = "Possible"
	CertaintyUnlikely Certainty = "Unlikely"
	CertaintyUnknown  Certainty = "Unknown"
)

var (
	statuses      = []Status{StatusActual, StatusExercise, StatusSystem, StatusTest, StatusDraft}
	msgTypes      = []MsgType{MsgAlert, MsgUpdate, MsgCancel, MsgAck, MsgError}
	scopes        = []Scope{ScopePublic, ScopeRestricted, ScopePrivate}
	categories    = []Category{CategoryGeo, CategoryMet, CategorySafety, CategorySecurity, CategoryRescue, CategoryFire, CategoryHealth, CategoryEnv, CategoryTransport, CategoryInfra, CategoryCBRNE, CategoryOther}
	responseTypes = []ResponseType{ResponseShelter, ResponseEvacuate, ResponsePrepare, ResponseExecute, ResponseAvoid, ResponseMonitor, ResponseAssess, ResponseAllClear, ResponseNone}
	urgencies     = []Urgency{UrgencyImmediate, UrgencyExpected, UrgencyFuture, UrgencyPast, UrgencyUnknown}
	severities    = []Severity{SeverityExtreme, SeveritySevere, SeverityModerate, SeverityMinor, SeverityUnknown}
	certainties   = []Certainty{CertaintyObserved, CertaintyLikely, CertaintyPossible, CertaintyUnlikely, CertaintyUnknown}
)

// rank orders severities: Unknown 0, Minor 1 ... Extreme 4; -1 if invalid.
func (s Severity) rank() int { return rankOf(s, severities) }

// rank orders urgencies: Unknown 0, Past 1 ... Immediate 4; -1 if invalid.
func (u Urgency) rank() int { return rankOf(u, urgencies) }

// rankOf counts from the end of a most-first list whose last entry is Unknown.
func rankOf[T ~string](v T, list []T) int {
	for i, x := range list {
		if x == v {
			if i == len(list)-1 {
				return 0
			}
			return len(list) - 1 - i
		}
	}
	return -1
}

func oneOf[T ~string](path string, v T, list []T) error {
	for _, x := range list {
		if x == v {
			return nil
		}
	}
	names := make([]string, len(list))
	for i, x := range list {
		names[i] = string(x)
	}
	if v == "" {
		return invalid(path, "required: one of %s", strings.Join(names, ", "))
	}
	return invalid(path, "%q is not one of %s", string(v), strings.Join(names, ", "))
}

// Alert is one CAP 1.2 <alert>. Times keep the offset they were written
// with; zero times are absent elements.
type Alert struct {
	Identifier  string
	Sender      string
	Sent        time.Time
	Status      Status
	MsgType     MsgType
	Source      string
	Scope       Scope
	Restriction string
	Addresses   string // space-separated, entries with spaces in double quotes
	Codes       []string
	Note        string
	References  []Reference
	Incidents   string // space-separated, as Addresses
	Infos       []Info
}

// Key is the alert's stable key: its sender and identifier.
func (a *Alert) Key() string { return Key(a.Sender, a.Identifier) }

// Key joins a sender and an identifier into the key Decision uses for an
// emergency ("sender,identifier"; neither may contain a comma).
func Key(sender, identifier string) string { return sender + "," + identifier }

// Reference names an earlier alert, as <references> lists them.
type Reference struct {
	Sender     string
	Identifier string
	Sent       time.Time
}

// Key is the referenced alert's key.
func (r Reference) Key() string { return Key(r.Sender, r.Identifier) }

// Info is one <info> block: the event in one language for some areas.
type Info struct {
	Language      string // RFC 3066 tag; "en-US" when the element is absent
	Categories    []Category
	Event         string
	ResponseTypes []ResponseType
	Urgency       Urgency
	Severity      Severity
	Certainty     Certainty
	Audience      string
	EventCodes    []NamedValue
	Effective     time.Time
	Onset         time.Time
	Expires       time.Time
	SenderName    string
	Headline      string
	Description   string
	Instruction   string
	Web           string
	Contact       string
	Parameters    []NamedValue
	Resources     []Resource
	Areas         []Area
}

// NamedValue is a valueName/value pair (eventCode, parameter, geocode).
type NamedValue struct {
	Name  string
	Value string
}

// Resource is a file that goes with an info block: by URI, or embedded
// (derefUri, decoded into Data).
type Resource struct {
	Desc     string `json:"desc"`
	MimeType string `json:"mime_type"`
	Size     int64  `json:"size,omitempty"` // bytes, 0 if not given
	URI      string `json:"uri,omitempty"`
	Data     []byte `json:"-"`
	Digest   string `json:"digest,omitempty"` // SHA-1, hex
}

// Area is one <area> of an info block.
type Area struct {
	Desc     string
	Polygons []Polygon
	Circles  []Circle
	Geocodes []NamedValue
	Altitude *float64 // feet above mean sea level
	Ceiling  *float64 // feet; only with Altitude
}

// Point is a WGS 84 position in decimal degrees.
type Point struct {
	Lat, Lon float64
}

// Polygon is a closed ring: at least four points, the first equal to the last.
type Polygon []Point

// Circle is a centre and a radius in kilometres.
type Circle struct {
	Center Point
	Radius float64
}

// Validate checks what Parse checks after decoding: required elements,
// enumerations, identifiers, ranges and embedded resources. Marshal and
// Decide call it too, so a hand-built Alert gets the same checks.
func (a *Alert) Validate() error {
	if a == nil {
		return invalid("", "no alert")
	}
	if err := validID("identifier", a.Identifier); err != nil {
		return err
	}
	if err := validID("sender", a.Sender); err != nil {
		return err
	}
	if a.Sent.IsZero() {
		return invalid("sent", "required")
	}
	if err := oneOf("status", a.Status, statuses); err != nil {
		return err
	}
	if err := oneOf("msgType", a.MsgType, msgTypes); err != nil {
		return err
	}
	if err := oneOf("scope", a.Scope, scopes); err != nil {
		return err
	}
	if a.Scope == ScopePrivate && strings.TrimSpace(a.Addresses) == "" {
		return invalid("addresses", "required when scope is Private")
	}
	for i, r := range a.References {
		p := fmt.Sprintf("references[%d]", i)
		if err := validID(p+".sender", r.Sender); err != nil {
			return err
		}
		if err := validID(p+".identifier", r.Identifier); err != nil {
			return err
		}
		if r.Sent.IsZero() {
			return invalid(p+".sent", "required")
		}
	}
	for i := range a.Infos {
		if err := a.Infos[i].validate(fmt.Sprintf("info[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

// validID checks an identifier or sender: required, and without the
// characters CAP forbids there (space, comma, < and &).
func validID(path, s string) error {
	if s == "" {
		return invalid(path, "required")
	}
	if strings.ContainsFunc(s, func(r rune) bool {
		return r == ',' || r == '<' || r == '&' || isSpace(r)
	}) {
		return invalid(path, "%q must not contain spaces, commas, < or &", s)
	}
	return nil
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

func (in *Info) validate(p string) error {
	if !validLanguage(in.Language) {
		return invalid(p+".language", "%q is not a language tag like vi or en-US", in.Language)
	}
	if len(in.Categories) == 0 {
		return invalid(p+".category", "required")
	}
	for i, c := range in.Categories {
		if err := oneOf(fmt.Sprintf("%s.category[%d]", p, i), c, categories); err != nil {
			return err
		}
	}
	if in.Event == "" {
		return invalid(p+".event", "required")
	}
	for i, r := range in.ResponseTypes {
		if err := oneOf(fmt.Sprintf("%s.responseType[%d]", p, i), r, responseTypes); err != nil {
			return err
		}
	}
	if err := oneOf(p+".urgency", in.Urgency, urgencies); err != nil {
		return err
	}
	if err := oneOf(p+".severity", in.Severity, severities); err != nil {
		return err
	}
	if err := oneOf(p+".certainty", in.Certainty, certainties); err != nil {
		return err
	}
	for i, v := range in.EventCodes {
		if v.Name == "" {
			return invalid(fmt.Sprintf("%s.eventCode[%d].valueName", p, i), "required")
		}
	}
	for i, v := range in.Parameters {
		if v.Name == "" {
			return invalid(fmt.Sprintf("%s.parameter[%d].valueName", p, i), "required")
		}
	}
	for i := range in.Resources {
		if err := in.Resources[i].validate(fmt.Sprintf("%s.resource[%d]", p, i)); err != nil {
			return err
		}
	}
	for i := range in.Areas {
		if err := in.Areas[i].validate(fmt.Sprintf("%s.area[%d]", p, i)); err != nil {
			return err
		}
	}
	return nil
}

// validLanguage accepts RFC 3066 tags: 1-8 letters, then subtags of 1-8
// letters or digits, separated by hyphens.
func validLanguage(s string) bool {
	if s == "" {
		return false
	}
	for i, sub := range strings.Split(s, "-") {
		if len(sub) < 1 || len(sub) > 8 {
			return false
		}
		for _, r := range sub {
			letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
			if !letter && (i == 0 || r < '0' || r > '9') {
				return false
			}
		}
	}
	return true
}

func (r *Resource) validate(p string) error {
	if r.Desc == "" {
		return invalid(p+".resourceDesc", "required")
	}
	if r.MimeType == "" {
		return invalid(p+".mimeType", "required")
	}
	if mt, _, err := mime.ParseMediaType(r.MimeType); err != nil || !strings.Contains(mt, "/") {
		return invalid(p+".mimeType", "%q is not a MIME type like audio/mpeg", r.MimeType)
	}
	if r.Size < 0 {
		return invalid(p+".size", "%d is negative", r.Size)
	}
	if r.Digest != "" {
		if err := validDigest(r.Digest); err != nil {
			return invalid(p+".digest", "%v", err)
		}
		if len(r.Data) > 0 {
			if err := r.VerifyDigest(r.Data); err != nil {
				return invalid(p+".digest", "does not match the derefUri data")
			}
		}
	}
	return nil
}

func (a *Area) validate(p string) error {
	if a.Desc == "" {
		return invalid(p+".areaDesc", "required")
	}
	for i, poly := range a.Polygons {
		q := fmt.Sprintf("%s.polygon[%d]", p, i)
		if len(poly) < 4 {
			return invalid(q, "has %d points, at least 4 needed", len(poly))
		}
		for _, pt := range poly {
			if err := pt.validate(q); err != nil {
				return err
			}
		}
		if poly[0] != poly[len(poly)-1] {
			return invalid(q, "is not closed: the first and last points differ")
		}
	}
	for i, c := range a.Circles {
		q := fmt.Sprintf("%s.circle[%d]", p, i)
		if err := c.Center.validate(q); err != nil {
			return err
		}
		if !(c.Radius >= 0 && c.Radius <= 40075) {
			return invalid(q, "radius %v km is out of range", c.Radius)
		}
	}
	for i, g := range a.Geocodes {
		if g.Name == "" {
			return invalid(fmt.Sprintf("%s.geocode[%d].valueName", p, i), "required")
		}
	}
	if a.Altitude != nil && !finite(*a.Altitude) {
		return invalid(p+".altitude", "not a number")
	}
	if a.Ceiling != nil {
		if a.Altitude == nil {
			return invalid(p+".ceiling", "given without altitude")
		}
		if !finite(*a.Ceiling) || *a.Ceiling < *a.Altitude {
			return invalid(p+".ceiling", "%v is below the altitude %v", *a.Ceiling, *a.Altitude)
		}
	}
	return nil
}

func (pt Point) validate(p string) error {
	if !(pt.Lat >= -90 && pt.Lat <= 90) || !(pt.Lon >= -180 && pt.Lon <= 180) {
		return invalid(p, "point %v,%v is not a latitude,longitude in degrees", pt.Lat, pt.Lon)
	}
	return nil
}

func finite(f float64) bool { return f-f == 0 }
