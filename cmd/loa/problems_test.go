package main

import (
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

func TestProblemWords(t *testing.T) {
	since := time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC) // 13:00 in Hà Nội
	tests := []struct {
		name   string
		p      protocol.Problem
		en, vi string
	}{
		{"sound card", protocol.Problem{Code: protocol.ProblemSoundCard, Level: protocol.LevelError, Subject: "alsa:nosuchcard", Detail: "Unknown PCM nosuchcard"},
			"sound card alsa:nosuchcard cannot be opened: Unknown PCM nosuchcard", "không mở được card âm thanh alsa:nosuchcard: Unknown PCM nosuchcard"},
		{"output", protocol.Problem{Code: protocol.ProblemOutput, Level: protocol.LevelError, Detail: "play a-1: snd_pcm_writei: Input/output error"},
			"the last item failed on the sound output: play a-1: snd_pcm_writei: Input/output error", "bản tin vừa rồi bị lỗi ở đầu ra âm thanh: play a-1: snd_pcm_writei: Input/output error"},
		{"disk full", protocol.Problem{Code: protocol.ProblemDiskFull, Level: protocol.LevelError, Value: 12, Limit: 30},
			"the memory card is full: 12 MB free, needs 30 MB", "thẻ nhớ đã đầy: còn trống 12 MB, cần 30 MB"},
		{"disk full, need unknown", protocol.Problem{Code: protocol.ProblemDiskFull, Level: protocol.LevelError, Value: 0},
			"the memory card is full: 0 MB free", "thẻ nhớ đã đầy: còn trống 0 MB"},
		{"cache write", protocol.Problem{Code: protocol.ProblemCacheWrite, Level: protocol.LevelError, Subject: "/var/lib/loa-agent", Detail: "read-only file system"},
			"the memory card cannot be written (/var/lib/loa-agent): read-only file system", "không ghi được vào thẻ nhớ (/var/lib/loa-agent): read-only file system"},
		{"hot", protocol.Problem{Code: protocol.ProblemHot, Level: protocol.LevelWarning, Value: 85.2, Limit: 80},
			"the processor is hot: 85 °C (warning above 80 °C)", "bộ xử lý quá nóng: 85 °C (cảnh báo khi trên 80 °C)"},
		{"clock ahead", protocol.Problem{Code: protocol.ProblemClockJump, Level: protocol.LevelWarning, Value: 3600},
			"the clock jumped forward by 1h0m0s", "đồng hồ nhảy tới 1h0m0s"},
		{"clock back", protocol.Problem{Code: protocol.ProblemClockJump, Level: protocol.LevelWarning, Value: -35.4},
			"the clock jumped back by 35s", "đồng hồ lùi lại 35s"},
		{"newer box", protocol.Problem{Code: "fan-stopped", Level: protocol.LevelWarning, Detail: "the fan stopped"},
			"fan-stopped: the fan stopped", "fan-stopped: the fan stopped"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LOA_LANG", "")
			if got := problemWords(tc.p); got != tc.en {
				t.Errorf("English %q, want %q", got, tc.en)
			}
			t.Setenv("LOA_LANG", "vi")
			if got := problemWords(tc.p); got != tc.vi {
				t.Errorf("Vietnamese %q, want %q", got, tc.vi)
			}
			tc.p.Since = since
			t.Setenv("LOA_LANG", "")
			if got, want := problemWords(tc.p), tc.en+" (since "+when(since)+")"; got != want {
				t.Errorf("with since: %q, want %q", got, want)
			}
		})
	}
}
