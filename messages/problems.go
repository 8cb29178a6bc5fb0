package messages

import (
	"cmp"
	"maps"
	"math"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// What `loa status` says of a box's problems (protocol.State.Problems), one
// sentence each. The box's own detail (an ALSA error, a file system error)
// stays as it sent it.
const (
	ProblemSoundCard    Key = "problem_soundcard"
	ProblemOutput       Key = "problem_output"
	ProblemDiskFull     Key = "problem_disk_full"
	ProblemDiskFullNeed Key = "problem_disk_full_need"
	ProblemCacheWrite   Key = "problem_cache_write"
	ProblemHot          Key = "problem_hot"
	ProblemClockAhead   Key = "problem_clock_ahead"
	ProblemClockBack    Key = "problem_clock_back"
	ProblemOther        Key = "problem_other"
	ProblemSince        Key = "problem_since"
	StatusProblems      Key = "status_problems"
)

func init() {
	maps.Copy(english, map[Key]string{
		ProblemSoundCard:    "sound card %s cannot be opened: %s",
		ProblemOutput:       "the last item failed on the sound output: %s",
		ProblemDiskFull:     "the memory card is full: %d MB free",
		ProblemDiskFullNeed: "the memory card is full: %d MB free, needs %d MB",
		ProblemCacheWrite:   "the memory card cannot be written (%s): %s",
		ProblemHot:          "the processor is hot: %.0f °C (warning above %.0f °C)",
		ProblemClockAhead:   "the clock jumped forward by %s",
		ProblemClockBack:    "the clock jumped back by %s",
		ProblemOther:        "%s: %s",
		ProblemSince:        "since %s",
		StatusProblems:      "problems (see README, \"When a box reports a problem\"):",
	})
	maps.Copy(vietnamese, map[Key]string{
		ProblemSoundCard:    "không mở được card âm thanh %s: %s",
		ProblemOutput:       "bản tin vừa rồi bị lỗi ở đầu ra âm thanh: %s",
		ProblemDiskFull:     "thẻ nhớ đã đầy: còn trống %d MB",
		ProblemDiskFullNeed: "thẻ nhớ đã đầy: còn trống %d MB, cần %d MB",
		ProblemCacheWrite:   "không ghi được vào thẻ nhớ (%s): %s",
		ProblemHot:          "bộ xử lý quá nóng: %.0f °C (cảnh báo khi trên %.0f °C)",
		ProblemClockAhead:   "đồng hồ nhảy tới %s",
		ProblemClockBack:    "đồng hồ lùi lại %s",
		ProblemOther:        "%s: %s",
		ProblemSince:        "từ %s",
		StatusProblems:      "sự cố (xem README, mục \"When a box reports a problem\"):",
	})
}

// Problem says one of a box's problems (protocol.State.Problems) in plain
// words in lang; the box's own detail stays as it sent it.
func Problem(lang string, p protocol.Problem) string {
	var s string
	switch p.Code {
	case protocol.ProblemSoundCard:
		s = In(lang, ProblemSoundCard, dash(p.Subject), dash(p.Detail))
	case protocol.ProblemOutput:
		s = In(lang, ProblemOutput, dash(p.Detail))
	case protocol.ProblemDiskFull:
		if p.Limit > 0 {
			s = In(lang, ProblemDiskFullNeed, int64(p.Value), int64(p.Limit))
		} else {
			s = In(lang, ProblemDiskFull, int64(p.Value))
		}
	case protocol.ProblemCacheWrite:
		s = In(lang, ProblemCacheWrite, dash(p.Subject), dash(p.Detail))
	case protocol.ProblemHot:
		s = In(lang, ProblemHot, p.Value, p.Limit)
	case protocol.ProblemClockJump:
		d := time.Duration(math.Abs(p.Value) * float64(time.Second)).Round(time.Second).String()
		if p.Value < 0 {
			s = In(lang, ProblemClockBack, d)
		} else {
			s = In(lang, ProblemClockAhead, d)
		}
	case protocol.ProblemTimeUnknown:
		s = timeProblem(lang, p)
	default: // a newer box's problem: its own words
		s = In(lang, ProblemOther, p.Code, cmp.Or(p.Detail, p.Subject, p.Level))
	}
	return s
}

func dash(s string) string { return cmp.Or(s, "-") }
