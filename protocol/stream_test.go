package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

func streamSigner(t testing.TB) (*Signer, Keyring) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return NewSigner(priv), Keyring{KeyID(pub): pub}
}

func TestStreamPacketRoundTrip(t *testing.T) {
	s, keys := streamSigner(t)
	topic := NewTopics("xa").Stream("l-1")
	at := time.Date(2026, 12, 5, 6, 0, 0, 123456000, time.UTC)
	for _, p := range []StreamPacket{
		{Seq: 0, At: at, Channels: 1, Frames: [][]byte{{0x78, 1, 2}, {0x78, 3}}},
		{Seq: 7, At: at, Channels: 2, Frames: [][]byte{bytes.Repeat([]byte{9}, MaxOpusFrame)}},
		{Seq: 9, At: at, Channels: 1, End: true},
	} {
		b, err := EncodeStreamPacket(topic, p, s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeStreamPacket(b, topic, keys)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if got.Seq != p.Seq || !got.At.Equal(p.At) || got.Channels != p.Channels || got.End != p.End || len(got.Frames) != len(p.Frames) {
			t.Fatalf("round trip: %+v → %+v", p, got)
		}
		for i := range p.Frames {
			if !bytes.Equal(got.Frames[i], p.Frames[i]) {
				t.Fatalf("frame %d changed", i)
			}
		}
	}
}

func TestStreamPacketForgeries(t *testing.T) {
	s, keys := streamSigner(t)
	other, _ := streamSigner(t)
	topics := NewTopics("xa")
	topic := topics.Stream("l-1")
	p := StreamPacket{Seq: 3, At: time.Unix(1_800_000_000, 0), Channels: 1, Frames: [][]byte{{0x78, 1, 2, 3}}}
	good, err := EncodeStreamPacket(topic, p, s)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := EncodeStreamPacket(topic, p, other)
	altered := bytes.Clone(good)
	altered[streamHeader+3+1] ^= 1 // a byte of the frame
	retimed := bytes.Clone(good)
	retimed[20] ^= 1 // the play time
	noSig := bytes.Clone(good[:len(good)-streamSigSize-1])
	noSig = append(noSig, 0)
	for name, tc := range map[string]struct {
		data  []byte
		topic string
		want  error
	}{
		"another key":     {forged, topic, ErrForged},
		"altered frame":   {altered, topic, ErrForged},
		"altered time":    {retimed, topic, ErrForged},
		"another session": {good, topics.Stream("l-2"), ErrForged},
		"unsigned":        {noSig, topic, ErrForged},
		"truncated":       {good[:len(good)-1], topic, ErrBadMessage},
		"not a packet":    {[]byte(`{"v":1}`), topic, ErrBadMessage},
		"empty":           {nil, topic, ErrBadMessage},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeStreamPacket(tc.data, tc.topic, keys)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestStreamItemValidate(t *testing.T) {
	base := PlanItem{ID: "l-1-1800000000", Start: time.Unix(1_800_000_000, 0), Expires: time.Unix(1_800_003_600, 0),
		Priority: Priority(2), Repeat: 1, Status: StatusLive, Stream: &StreamRef{Session: "l-1", Channels: 1}}
	if err := base.Validate(); err != nil {
		t.Fatalf("a stream item is refused: %v", err)
	}
	withMedia := base
	withMedia.Media = Media{SHA256: "ab", Size: 1, DurationMS: 1}
	badChannels := base
	badChannels.Stream = &StreamRef{Session: "l-1", Channels: 3}
	badSession := base
	badSession.Stream = &StreamRef{Session: "../x", Channels: 1}
	repeat := base
	repeat.Repeat = 2
	for name, it := range map[string]PlanItem{"media": withMedia, "channels": badChannels, "session": badSession, "repeat": repeat} {
		if it.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzDecodeStreamPacket(f *testing.F) {
	s, keys := streamSigner(f)
	topic := NewTopics("xa").Stream("l-1")
	for _, p := range []StreamPacket{
		{Seq: 1, At: time.Unix(1_800_000_000, 0), Channels: 1, Frames: [][]byte{{0x78, 1}, {0x78, 2, 3}}},
		{Seq: 2, At: time.Unix(1_800_000_000, 0), Channels: 2, End: true},
	} {
		b, err := EncodeStreamPacket(topic, p, s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeStreamPacket(data, topic, keys)
		if err != nil {
			return
		}
		again, err := EncodeStreamPacket(topic, p, s)
		if err != nil {
			t.Fatalf("an accepted packet does not re-encode: %v", err)
		}
		q, err := DecodeStreamPacket(again, topic, keys)
		if err != nil || q.Seq != p.Seq || !q.At.Equal(p.At) || len(q.Frames) != len(p.Frames) {
			t.Fatalf("round trip changed the packet: %v", err)
		}
	})
}
