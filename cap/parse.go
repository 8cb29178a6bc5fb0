package cap

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// The XML shapes. Every element that may appear once is a slice so that a
// repeated one is an error rather than silently overwritten. Fields are in
// the order the CAP schema gives, which is the order Marshal writes.
type xmlAlert struct {
	XMLName     xml.Name
	Identifier  []string  `xml:"identifier"`
	Sender      []string  `xml:"sender"`
	Sent        []string  `xml:"sent"`
	Status      []string  `xml:"status"`
	MsgType     []string  `xml:"msgType"`
	Source      []string  `xml:"source"`
	Scope       []string  `xml:"scope"`
	Restriction []string  `xml:"restriction"`
	Addresses   []string  `xml:"addresses"`
	Code        []string  `xml:"code"`
	Note        []string  `xml:"note"`
	References  []string  `xml:"references"`
	Incidents   []string  `xml:"incidents"`
	Info        []xmlInfo `xml:"info"`
}

type xmlInfo struct {
	Language     []string      `xml:"language"`
	Category     []string      `xml:"category"`
	Event        []string      `xml:"event"`
	ResponseType []string      `xml:"responseType"`
	Urgency      []string      `xml:"urgency"`
	Severity     []string      `xml:"severity"`
	Certainty    []string      `xml:"certainty"`
	Audience     []string      `xml:"audience"`
	EventCode    []xmlPair     `xml:"eventCode"`
	Effective    []string      `xml:"effective"`
	Onset        []string      `xml:"onset"`
	Expires      []string      `xml:"expires"`
	SenderName   []string      `xml:"senderName"`
	Headline     []string      `xml:"headline"`
	Description  []string      `xml:"description"`
	Instruction  []string      `xml:"instruction"`
	Web          []string      `xml:"web"`
	Contact      []string      `xml:"contact"`
	Parameter    []xmlPair     `xml:"parameter"`
	Resource     []xmlResource `xml:"resource"`
	Area         []xmlArea     `xml:"area"`
}

type xmlPair struct {
	ValueName []string `xml:"valueName"`
	Value     []string `xml:"value"`
}

type xmlResource struct {
	ResourceDesc []string `xml:"resourceDesc"`
	MimeType     []string `xml:"mimeType"`
	Size         []string `xml:"size"`
	URI          []string `xml:"uri"`
	DerefURI     []string `xml:"derefUri"`
	Digest       []string `xml:"digest"`
}

type xmlArea struct {
	AreaDesc []string  `xml:"areaDesc"`
	Polygon  []string  `xml:"polygon"`
	Circle   []string  `xml:"circle"`
	Geocode  []xmlPair `xml:"geocode"`
	Altitude []string  `xml:"altitude"`
	Ceiling  []string  `xml:"ceiling"`
}

// Parse reads one CAP 1.2 alert (at most MaxSize bytes) and validates it.
// Errors about the document wrap ErrInvalid (and ErrTooLarge when it is too
// long) and name the element at fault; a failing reader's error is returned
// wrapped as it is.
func Parse(r io.Reader) (*Alert, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("cap: read alert: %w", err)
	}
	if len(data) > MaxSize {
		return nil, &Error{Msg: fmt.Sprintf("the document is larger than %d bytes", MaxSize), kinds: []error{ErrInvalid, ErrTooLarge}}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	if err := checkDocument(data); err != nil {
		return nil, err
	}
	var raw xmlAlert
	if err := xml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		e := invalid("", "not well-formed XML: %v", err)
		e.cause = err
		return nil, e
	}
	a, err := raw.alert()
	if err != nil {
		return nil, err
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a, nil
}

// checkDocument walks every token once: the XML must be well formed, hold
// no <!DOCTYPE> or other declaration, and have exactly one root, a CAP 1.2
// <alert>, with nothing but white space outside it.
func checkDocument(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return invalid("", "the document is empty")
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			e := invalid("", "not well-formed XML: %v", err)
			e.cause = err
			return e
		}
		switch t := tok.(type) {
		case xml.Directive:
			return invalid("", "DOCTYPE and other <!...> declarations are not allowed")
		case xml.StartElement:
			if depth == 0 {
				roots++
				if roots > 1 {
					return invalid("", "more than one root element")
				}
				if t.Name.Local != "alert" {
					return invalid("", "the root element is <%s>, not <alert>", t.Name.Local)
				}
				if t.Name.Space != Namespace {
					if t.Name.Space == "" {
						return invalid("alert", "has no namespace; CAP 1.2 is %s", Namespace)
					}
					return invalid("alert", "namespace %q is not CAP 1.2 (%s)", t.Name.Space, Namespace)
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				if roots == 0 {
					return invalid("", "not an XML document: text before any element")
				}
				return invalid("", "text after the </alert> element")
			}
		}
	}
	if roots == 0 {
		return invalid("", "no <alert> element")
	}
	return nil
}

// converter turns the XML shapes into an Alert, keeping the first error.
type converter struct{ err error }

func (c *converter) fail(e *Error) {
	if c.err == nil {
		c.err = e
	}
}

// one returns the single value of an element that may appear at most once,
// trimmed of surrounding white space.
func (c *converter) one(path string, vals []string) string {
	if len(vals) > 1 {
		c.fail(invalid(path, "appears %d times; at most once allowed", len(vals)))
	}
	if len(vals) == 0 {
		return ""
	}
	return strings.TrimSpace(vals[0])
}

func (c *converter) time(path string, vals []string) time.Time {
	s := c.one(path, vals)
	if s == "" {
		return time.Time{}
	}
	t, err := parseTime(s)
	if err != nil {
		c.fail(invalid(path, "%v", err))
	}
	return t
}

func (c *converter) pairs(path string, xs []xmlPair) []NamedValue {
	var out []NamedValue
	for i, x := range xs {
		p := fmt.Sprintf("%s[%d]", path, i)
		out = append(out, NamedValue{Name: c.one(p+".valueName", x.ValueName), Value: c.one(p+".value", x.Value)})
	}
	return out
}

func (x *xmlAlert) alert() (*Alert, error) {
	var c converter
	a := &Alert{
		Identifier:  c.one("identifier", x.Identifier),
		Sender:      c.one("sender", x.Sender),
		Sent:        c.time("sent", x.Sent),
		Status:      Status(c.one("status", x.Status)),
		MsgType:     MsgType(c.one("msgType", x.MsgType)),
		Source:      c.one("source", x.Source),
		Scope:       Scope(c.one("scope", x.Scope)),
		Restriction: c.one("restriction", x.Restriction),
		Addresses:   c.one("addresses", x.Addresses),
		Note:        c.one("note", x.Note),
		Incidents:   c.one("incidents", x.Incidents),
	}
	for _, code := range x.Code {
		a.Codes = append(a.Codes, strings.TrimSpace(code))
	}
	if refs := c.one("references", x.References); refs != "" {
		var err error
		if a.References, err = parseReferences(refs); err != nil {
			c.fail(invalid("references", "%v", err))
		}
	}
	for i := range x.Info {
		a.Infos = append(a.Infos, c.info(fmt.Sprintf("info[%d]", i), &x.Info[i]))
	}
	if c.err != nil {
		return nil, c.err
	}
	return a, nil
}

func (c *converter) info(p string, x *xmlInfo) Info {
	in := Info{
		Language:    c.one(p+".language", x.Language),
		Event:       c.one(p+".event", x.Event),
		Urgency:     Urgency(c.one(p+".urgency", x.Urgency)),
		Severity:    Severity(c.one(p+".severity", x.Severity)),
		Certainty:   Certainty(c.one(p+".certainty", x.Certainty)),
		Audience:    c.one(p+".audience", x.Audience),
		EventCodes:  c.pairs(p+".eventCode", x.EventCode),
		Effective:   c.time(p+".effective", x.Effective),
		Onset:       c.time(p+".onset", x.Onset),
		Expires:     c.time(p+".expires", x.Expires),
		SenderName:  c.one(p+".senderName", x.SenderName),
		Headline:    c.one(p+".headline", x.Headline),
		Description: c.one(p+".description", x.Description),
		Instruction: c.one(p+".instruction", x.Instruction),
		Web:         c.one(p+".web", x.Web),
		Contact:     c.one(p+".contact", x.Contact),
		Parameters:  c.pairs(p+".parameter", x.Parameter),
	}
	if in.Language == "" {
		in.Language = "en-US" // the CAP default
	}
	for _, s := range x.Category {
		in.Categories = append(in.Categories, Category(strings.TrimSpace(s)))
	}
	for _, s := range x.ResponseType {
		in.ResponseTypes = append(in.ResponseTypes, ResponseType(strings.TrimSpace(s)))
	}
	for i := range x.Resource {
		in.Resources = append(in.Resources, c.resource(fmt.Sprintf("%s.resource[%d]", p, i), &x.Resource[i]))
	}
	for i := range x.Area {
		in.Areas = append(in.Areas, c.area(fmt.Sprintf("%s.area[%d]", p, i), &x.Area[i]))
	}
	return in
}

func (c *converter) resource(p string, x *xmlResource) Resource {
	r := Resource{
		Desc:     c.one(p+".resourceDesc", x.ResourceDesc),
		MimeType: c.one(p+".mimeType", x.MimeType),
		URI:      c.one(p+".uri", x.URI),
		Digest:   c.one(p+".digest", x.Digest),
	}
	if s := c.one(p+".size", x.Size); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || !allDigits(s) {
			c.fail(invalid(p+".size", "%q is not a number of bytes", s))
		}
		r.Size = n
	}
	if s := c.one(p+".derefUri", x.DerefURI); s != "" {
		data, err := decodeBase64(s)
		if err != nil {
			c.fail(invalid(p+".derefUri", "not base64: %v", err))
		}
		r.Data = data
	}
	return r
}

func (c *converter) area(p string, x *xmlArea) Area {
	a := Area{
		Desc:     c.one(p+".areaDesc", x.AreaDesc),
		Geocodes: c.pairs(p+".geocode", x.Geocode),
	}
	for i, s := range x.Polygon {
		poly, err := parsePolygon(s)
		if err != nil {
			c.fail(invalid(fmt.Sprintf("%s.polygon[%d]", p, i), "%v", err))
		}
		a.Polygons = append(a.Polygons, poly)
	}
	for i, s := range x.Circle {
		circle, err := parseCircle(s)
		if err != nil {
			c.fail(invalid(fmt.Sprintf("%s.circle[%d]", p, i), "%v", err))
		}
		a.Circles = append(a.Circles, circle)
	}
	a.Altitude = c.decimal(p+".altitude", x.Altitude)
	a.Ceiling = c.decimal(p+".ceiling", x.Ceiling)
	return a
}

func (c *converter) decimal(path string, vals []string) *float64 {
	s := c.one(path, vals)
	if s == "" {
		return nil
	}
	f, err := parseDecimal(s)
	if err != nil {
		c.fail(invalid(path, "%v", err))
		return nil
	}
	return &f
}

// parseTime reads a CAP date-time: YYYY-MM-DDThh:mm:ss followed by an
// offset like +07:00 ("-00:00" for UTC). "Z" and fractional seconds are not
// CAP but are accepted.
func parseTime(s string) (time.Time, error) {
	bad := fmt.Errorf("%q is not a date-time like 2026-09-14T06:30:00+07:00", s)
	if len(s) < len("2006-01-02T15:04:05Z") || s[10] != 'T' {
		return time.Time{}, bad
	}
	if !strings.HasSuffix(s, "Z") {
		if len(s) < len("2006-01-02T15:04:05+07:00") {
			return time.Time{}, bad
		}
		if o := s[len(s)-6]; o != '+' && o != '-' {
			return time.Time{}, bad
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() {
		return time.Time{}, bad
	}
	return t, nil
}

// formatTime writes a CAP date-time, with "-00:00" for UTC as CAP asks.
func formatTime(t time.Time) string {
	s := t.Format("2006-01-02T15:04:05.999999999")
	if _, off := t.Zone(); off == 0 {
		return s + "-00:00"
	}
	return s + t.Format("-07:00")
}

// parseReferences reads "sender,identifier,sent" entries separated by white space.
func parseReferences(s string) ([]Reference, error) {
	var out []Reference
	for _, entry := range strings.Fields(s) {
		parts := strings.Split(entry, ",")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("%q is not sender,identifier,sent", entry)
		}
		t, err := parseTime(parts[2])
		if err != nil {
			return nil, fmt.Errorf("%q: %v", entry, err)
		}
		out = append(out, Reference{Sender: parts[0], Identifier: parts[1], Sent: t})
	}
	return out, nil
}

func formatReferences(refs []Reference) string {
	parts := make([]string, len(refs))
	for i, r := range refs {
		parts[i] = r.Sender + "," + r.Identifier + "," + formatTime(r.Sent)
	}
	return strings.Join(parts, " ")
}

// parseDecimal reads a plain decimal number: an optional sign, digits and
// at most one point. No exponents, hex, infinities or NaN.
func parseDecimal(s string) (float64, error) {
	digits, point := 0, 0
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			point++
		case (r == '-' || r == '+') && i == 0:
		default:
			digits = -1
		}
		if digits < 0 {
			break
		}
	}
	if digits <= 0 || point > 1 {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !finite(f) {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	return f, nil
}

func formatDecimal(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func parsePoint(s string) (Point, error) {
	lat, lon, ok := strings.Cut(s, ",")
	if !ok {
		return Point{}, fmt.Errorf("%q is not latitude,longitude", s)
	}
	var p Point
	var err error
	if p.Lat, err = parseDecimal(lat); err != nil {
		return p, err
	}
	if p.Lon, err = parseDecimal(lon); err != nil {
		return p, err
	}
	return p, nil
}

func formatPoint(p Point) string { return formatDecimal(p.Lat) + "," + formatDecimal(p.Lon) }

// parsePolygon reads "lat,lon lat,lon ..." (validate checks closure and ranges).
func parsePolygon(s string) (Polygon, error) {
	var poly Polygon
	for _, f := range strings.Fields(s) {
		p, err := parsePoint(f)
		if err != nil {
			return nil, err
		}
		poly = append(poly, p)
	}
	if len(poly) == 0 {
		return nil, errors.New("empty")
	}
	return poly, nil
}

func formatPolygon(poly Polygon) string {
	parts := make([]string, len(poly))
	for i, p := range poly {
		parts[i] = formatPoint(p)
	}
	return strings.Join(parts, " ")
}

// parseCircle reads "lat,lon radius" (radius in km).
func parseCircle(s string) (Circle, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return Circle{}, fmt.Errorf("%q is not \"latitude,longitude radius\"", s)
	}
	center, err := parsePoint(f[0])
	if err != nil {
		return Circle{}, err
	}
	radius, err := parseDecimal(f[1])
	if err != nil {
		return Circle{}, err
	}
	return Circle{Center: center, Radius: radius}, nil
}

// decodeBase64 reads derefUri data: standard base64, white space (line
// breaks) ignored, padding optional.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if isSpace(r) {
			return -1
		}
		return r
	}, s)
	if strings.HasSuffix(s, "=") {
		return base64.StdEncoding.Strict().DecodeString(s)
	}
	return base64.RawStdEncoding.Strict().DecodeString(s)
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func validDigest(s string) error {
	if len(s) != 2*sha1.Size {
		return fmt.Errorf("%q is not a SHA-1 digest (40 hex digits)", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fmt.Errorf("%q is not a SHA-1 digest (40 hex digits)", s)
	}
	return nil
}

// VerifyDigest checks data against the resource's SHA-1 digest, if it has
// one: use it on what was fetched from URI.
func (r *Resource) VerifyDigest(data []byte) error {
	if r.Digest == "" {
		return nil
	}
	sum := sha1.Sum(data)
	if !strings.EqualFold(hex.EncodeToString(sum[:]), r.Digest) {
		return fmt.Errorf("resource %q: SHA-1 %x does not match digest %s", r.Desc, sum, r.Digest)
	}
	return nil
}

// Marshal writes a valid alert as an indented CAP 1.2 document.
func Marshal(a *Alert) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	x := xmlAlert{
		XMLName:     xml.Name{Space: Namespace, Local: "alert"},
		Identifier:  opt(a.Identifier),
		Sender:      opt(a.Sender),
		Sent:        optTime(a.Sent),
		Status:      opt(string(a.Status)),
		MsgType:     opt(string(a.MsgType)),
		Source:      opt(a.Source),
		Scope:       opt(string(a.Scope)),
		Restriction: opt(a.Restriction),
		Addresses:   opt(a.Addresses),
		Code:        a.Codes,
		Note:        opt(a.Note),
		References:  opt(formatReferences(a.References)),
		Incidents:   opt(a.Incidents),
	}
	for i := range a.Infos {
		x.Info = append(x.Info, infoXML(&a.Infos[i]))
	}
	out, err := xml.MarshalIndent(&x, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("cap: marshal: %w", err)
	}
	return append(append([]byte(xml.Header), out...), '\n'), nil
}

func infoXML(in *Info) xmlInfo {
	x := xmlInfo{
		Language:    opt(in.Language),
		Event:       opt(in.Event),
		Urgency:     opt(string(in.Urgency)),
		Severity:    opt(string(in.Severity)),
		Certainty:   opt(string(in.Certainty)),
		Audience:    opt(in.Audience),
		EventCode:   pairsXML(in.EventCodes),
		Effective:   optTime(in.Effective),
		Onset:       optTime(in.Onset),
		Expires:     optTime(in.Expires),
		SenderName:  opt(in.SenderName),
		Headline:    opt(in.Headline),
		Description: opt(in.Description),
		Instruction: opt(in.Instruction),
		Web:         opt(in.Web),
		Contact:     opt(in.Contact),
		Parameter:   pairsXML(in.Parameters),
	}
	for _, c := range in.Categories {
		x.Category = append(x.Category, string(c))
	}
	for _, r := range in.ResponseTypes {
		x.ResponseType = append(x.ResponseType, string(r))
	}
	for _, r := range in.Resources {
		xr := xmlResource{
			ResourceDesc: opt(r.Desc),
			MimeType:     opt(r.MimeType),
			URI:          opt(r.URI),
			Digest:       opt(r.Digest),
		}
		if r.Size > 0 {
			xr.Size = opt(strconv.FormatInt(r.Size, 10))
		}
		if len(r.Data) > 0 {
			xr.DerefURI = opt(base64.StdEncoding.EncodeToString(r.Data))
		}
		x.Resource = append(x.Resource, xr)
	}
	for _, a := range in.Areas {
		xa := xmlArea{AreaDesc: opt(a.Desc), Geocode: pairsXML(a.Geocodes)}
		for _, p := range a.Polygons {
			xa.Polygon = append(xa.Polygon, formatPolygon(p))
		}
		for _, c := range a.Circles {
			xa.Circle = append(xa.Circle, formatPoint(c.Center)+" "+formatDecimal(c.Radius))
		}
		if a.Altitude != nil {
			xa.Altitude = opt(formatDecimal(*a.Altitude))
		}
		if a.Ceiling != nil {
			xa.Ceiling = opt(formatDecimal(*a.Ceiling))
		}
		x.Area = append(x.Area, xa)
	}
	return x
}

func pairsXML(vs []NamedValue) []xmlPair {
	var out []xmlPair
	for _, v := range vs {
		out = append(out, xmlPair{ValueName: []string{v.Name}, Value: []string{v.Value}})
	}
	return out
}

func opt(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func optTime(t time.Time) []string {
	if t.IsZero() {
		return nil
	}
	return []string{formatTime(t)}
}
