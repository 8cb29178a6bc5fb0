package live_test

import (
	"errors"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loa-commune/loa/live"
)

func TestOptionsValidate(t *testing.T) {
	if err := live.DefaultOptions().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		field string
		edit  func(*live.Options)
	}{
		{"delay", func(o *live.Options) { o.Delay = 100 * time.Millisecond }},
		{"delay", func(o *live.Options) { o.Delay = time.Minute }},
		{"min_lead", func(o *live.Options) { o.MinLead = 0 }},
		{"min_lead", func(o *live.Options) { o.MinLead = o.Delay }},
		{"packet_duration", func(o *live.Options) { o.PacketDuration = 10 * time.Millisecond }},
		{"packet_duration", func(o *live.Options) { o.PacketDuration = 2 * time.Second }},
		{"packet_duration", func(o *live.Options) { o.PacketDuration = time.Second; o.Delay = time.Second }},
		{"bitrate_kbps", func(o *live.Options) { o.BitrateKbps = 4 }},
		{"bitrate_kbps", func(o *live.Options) { o.BitrateKbps = 512 }},
		{"channels", func(o *live.Options) { o.Channels = 0 }},
		{"channels", func(o *live.Options) { o.Channels = 6 }},
		{"retry_window", func(o *live.Options) { o.RetryWindow = -time.Second }},
		{"retry_window", func(o *live.Options) { o.RetryWindow = 2 * time.Hour }},
		{"io_timeout", func(o *live.Options) { o.IOTimeout = 100 * time.Millisecond }},
		{"max_session", func(o *live.Options) { o.MaxSession = time.Second }},
		{"max_session", func(o *live.Options) { o.MaxSession = 48 * time.Hour }},
		{"recordings_keep_days", func(o *live.Options) { o.RecordingsKeepDays = 0 }},
		{"ffmpeg", func(o *live.Options) { o.FFmpeg = "" }},
		{"memory_mb", func(o *live.Options) { o.MemoryMB = 64 }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			o := live.DefaultOptions()
			tc.edit(&o)
			var fe *live.FieldError
			if err := o.Validate(); !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("Validate() = %v, want an error naming %s", err, tc.field)
			}
		})
	}
}

// TestOptionsYAML: the controller's config sets them under live:, with
// durations as Go writes them.
func TestOptionsYAML(t *testing.T) {
	var cfg struct {
		Live live.Options `yaml:"live"`
	}
	cfg.Live = live.DefaultOptions()
	doc := "live:\n  delay: 2s\n  packet_duration: 60ms\n  bitrate_kbps: 32\n  retry_window: 2m\n  recordings_keep_days: 30\n"
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	want := live.DefaultOptions()
	want.Delay, want.PacketDuration, want.BitrateKbps, want.RetryWindow, want.RecordingsKeepDays = 2*time.Second, 60*time.Millisecond, 32, 2*time.Minute, 30
	if cfg.Live != want {
		t.Errorf("got %+v\nwant %+v", cfg.Live, want)
	}
	if err := cfg.Live.Validate(); err != nil {
		t.Error(err)
	}
}
