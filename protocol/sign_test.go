package protocol

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func testSigner(t testing.TB, seed byte) *Signer {
	t.Helper()
	return NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
}

func TestSignedEnvelope(t *testing.T) {
	ctl, next, evil := testSigner(t, 1), testSigner(t, 2), testSigner(t, 3)
	topics := NewTopics("xa")
	topic := topics.PlanGroup("thon-1")
	t0 := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	plan := Plan{Target: "group/thon-1", Generated: t0, Items: []PlanItem{}}
	keys := Keyring{ctl.KeyID(): ctl.Public()}
	good, err := EncodeSigned(topic, KindPlan, "xa", 7, t0, plan, ctl)
	if err != nil {
		t.Fatal(err)
	}
	var got Plan
	if _, err := DecodeSigned(good, topic, "xa", KindPlan, keys, &got); err != nil || got.Target != plan.Target {
		t.Fatalf("genuine plan: %v, %+v", err, got)
	}

	tamper := func(f func(e *Envelope)) []byte {
		var e Envelope
		if err := json.Unmarshal(good, &e); err != nil {
			t.Fatal(err)
		}
		f(&e)
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	unsigned, _ := Encode(KindPlan, "xa", 7, t0, plan)
	forged, _ := EncodeSigned(topic, KindPlan, "xa", 8, t0, plan, evil)
	rotating, _ := EncodeSigned(topic, KindPlan, "xa", 9, t0, plan, ctl, next)
	tests := []struct {
		name  string
		data  []byte
		topic string
		keys  Keyring
		ok    bool
	}{
		{"genuine", good, topic, keys, true},
		{"unsigned", unsigned, topic, keys, false},
		{"signed by another key", forged, topic, keys, false},
		{"moved to another box's topic", good, topics.PlanGroup("thon-2"), keys, false},
		{"body altered", tamper(func(e *Envelope) {
			e.Body = json.RawMessage(`{"target":"group/thon-1","generated":"2026-03-01T07:00:00Z","items":[]}`)
		}), topic, keys, false},
		{"sequence altered", tamper(func(e *Envelope) { e.Seq++ }), topic, keys, false},
		{"issue time altered", tamper(func(e *Envelope) { e.Issued = e.Issued.Add(time.Hour) }), topic, keys, false},
		{"signature truncated", tamper(func(e *Envelope) { e.Sigs[0].Sig = e.Sigs[0].Sig[:10] }), topic, keys, false},
		{"too many signatures", tamper(func(e *Envelope) {
			for range 5 {
				e.Sigs = append(e.Sigs, e.Sigs[0])
			}
		}), topic, keys, false},
		{"forged signature claiming the trusted key", tamper(func(e *Envelope) { e.Sigs[0].Sig = ed25519.Sign(evil.key, signedBytes(topic, *e)) }), topic, keys, false},
		{"rotation: old key trusted", rotating, topic, keys, true},
		{"rotation: new key trusted", rotating, topic, Keyring{next.KeyID(): next.Public()}, true},
		{"no trusted keys", good, topic, Keyring{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Plan
			_, err := DecodeSigned(tc.data, tc.topic, "xa", KindPlan, tc.keys, &p)
			if tc.ok != (err == nil) {
				t.Fatalf("DecodeSigned: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrForged) {
				t.Fatalf("error %v does not wrap ErrForged", err)
			}
		})
	}
}

func TestPublicKeyText(t *testing.T) {
	s := testSigner(t, 5)
	text := FormatPublicKey(s.Public())
	k, err := NewKeyring(text)
	if err != nil || !k[s.KeyID()].Equal(s.Public()) {
		t.Fatalf("NewKeyring(%q) = %v, %v", text, k, err)
	}
	for _, bad := range []string{"", "ed25519:", "ed25519:AAAA", "rsa:" + text[len(PublicKeyPrefix):], text + "=="} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted it", bad)
		}
	}
}

// FuzzDecodeSigned feeds the verifier arbitrary payloads: it must never
// panic, and never accept anything but what the trusted key signed.
func FuzzDecodeSigned(f *testing.F) {
	ctl := testSigner(f, 1)
	topic := NewTopics("xa").PlanDevice("box-1")
	t0 := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	good, _ := EncodeSigned(topic, KindPlan, "xa", 7, t0, Plan{Target: "device/box-1", Generated: t0, Items: []PlanItem{}}, ctl)
	f.Add(good)
	f.Add([]byte(`{"v":1,"kind":"plan","site":"xa","issued":"2026-03-01T06:00:00Z","seq":1,"body":{},"sigs":[{"key":"00","sig":"AA=="}]}`))
	f.Add([]byte(`{}`))
	keys := Keyring{ctl.KeyID(): ctl.Public()}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Plan
		e, err := DecodeSigned(data, topic, "xa", KindPlan, keys, &p)
		if err != nil {
			return
		}
		// Accepted: it must be exactly what the key signed.
		if !ed25519.Verify(ctl.Public(), signedBytes(topic, e), findSig(e, ctl.KeyID())) {
			t.Fatalf("accepted an envelope the key did not sign: %s", data)
		}
	})
}

func findSig(e Envelope, key string) []byte {
	for _, s := range e.Sigs {
		if s.Key == key {
			return s.Sig
		}
	}
	return nil
}

// BenchmarkDecodeSignedPlan is what one box spends on an emergency's plan:
// parse the envelope, check the signature, decode the items. (loa bench's
// simulated boxes share one decode of each plan; see loadtest.planCache.)
func BenchmarkDecodeSignedPlan(b *testing.B) {
	ctl := testSigner(b, 1)
	topic := NewTopics("xa").PlanAll()
	t0 := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	plan := Plan{Target: "all", Generated: t0, Items: []PlanItem{{
		ID: "e-0123456789-1772344800", Announcement: "e-0123456789", Start: t0, Expires: t0.Add(10 * time.Minute),
		Priority: Emergency, Repeat: 3, Tone: ToneSiren, Status: StatusLive,
	}}}
	data, err := EncodeSigned(topic, KindPlan, "xa", 7, t0, plan, ctl)
	if err != nil {
		b.Fatal(err)
	}
	keys := Keyring{ctl.KeyID(): ctl.Public()}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var got Plan
		if _, err := DecodeSigned(data, topic, "xa", KindPlan, keys, &got); err != nil {
			b.Fatal(err)
		}
	}
}
