package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// Version is the envelope version this code writes and accepts.
const Version = 1

// MaxPayload bounds what a decoder accepts; a plan of 48 h for a busy commune
// is a few tens of kilobytes.
const MaxPayload = 1 << 20

// Kind names the body an envelope carries.
type Kind string

// Envelope kinds.
const (
	KindPlan         Kind = "plan"
	KindConfig       Kind = "config"
	KindState        Kind = "state"
	KindEvent        Kind = "event"
	KindEvents       Kind = "events" // several events in one message (EventBatch)
	KindTimeRequest  Kind = "time_req"
	KindTimeResponse Kind = "time_resp"
	KindTrigger      Kind = "trigger"
)

// ErrBadMessage wraps every decoding failure, so callers can count them.
var ErrBadMessage = errors.New("bad message")

// Envelope is what every MQTT payload is: version, kind, site, issue time,
// the sender's sequence number, the body and, from the controller,
// signatures (sign.go).
type Envelope struct {
	V      int             `json:"v"`
	Kind   Kind            `json:"kind"`
	Site   string          `json:"site"`
	Issued time.Time       `json:"issued"`
	Seq    uint64          `json:"seq"`
	Body   json.RawMessage `json:"body"`
	Sigs   []Signature     `json:"sigs,omitempty"`
}

// Encode wraps body in an envelope and marshals it.
func Encode(kind Kind, site string, seq uint64, issued time.Time, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s body: %w", kind, err)
	}
	return json.Marshal(Envelope{V: Version, Kind: kind, Site: site, Issued: issued.UTC(), Seq: seq, Body: b})
}

// DecodeEnvelope parses data and checks the envelope's version, kind and
// site. want is the kind the topic carries.
func DecodeEnvelope(data []byte, site string, want Kind) (Envelope, error) {
	return decodeEnvelope(data, site, want)
}

// decodeEnvelope is DecodeEnvelope for a topic that carries any of kinds.
func decodeEnvelope(data []byte, site string, kinds ...Kind) (Envelope, error) {
	var e Envelope
	if len(data) > MaxPayload {
		return e, fmt.Errorf("%w: payload of %d bytes is over %d", ErrBadMessage, len(data), MaxPayload)
	}
	if err := strictUnmarshal(data, &e); err != nil {
		return e, fmt.Errorf("%w: envelope: %v", ErrBadMessage, err)
	}
	switch {
	case e.V != Version:
		return e, fmt.Errorf("%w: version %d, want %d", ErrBadMessage, e.V, Version)
	case !slices.Contains(kinds, e.Kind):
		return e, fmt.Errorf("%w: kind %q, want %q", ErrBadMessage, e.Kind, kinds[0])
	case e.Site != site:
		return e, fmt.Errorf("%w: site %q, want %q", ErrBadMessage, e.Site, site)
	case len(e.Body) == 0 || bytes.Equal(e.Body, []byte("null")):
		return e, fmt.Errorf("%w: no body", ErrBadMessage)
	case e.Issued.UTC().Year() < 0 || e.Issued.UTC().Year() > 9999:
		// Encode writes the issue time in UTC; refuse what it could not write.
		return e, fmt.Errorf("%w: issue time %v out of range", ErrBadMessage, e.Issued)
	}
	return e, nil
}

// Decode parses an envelope of kind want for site and its body into v, then
// validates the body when v has a Validate method.
func Decode(data []byte, site string, want Kind, v any) (Envelope, error) {
	e, err := DecodeEnvelope(data, site, want)
	if err != nil {
		return e, err
	}
	return e, decodeBody(e, want, v)
}

// decodeBody unmarshals and validates e's body into v.
func decodeBody(e Envelope, want Kind, v any) error {
	if err := strictUnmarshal(e.Body, v); err != nil {
		return fmt.Errorf("%w: %s body: %v", ErrBadMessage, want, err)
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("%w: %s body: %v", ErrBadMessage, want, err)
		}
	}
	return nil
}

// strictUnmarshal decodes one JSON value. Unknown fields are allowed so that a
// newer controller can add fields, but trailing data is not.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	// dec.More would miss a stray ']' or '}': ask for one more token.
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON value")
	}
	return nil
}
