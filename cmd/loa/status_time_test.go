package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// TestTimeSourcesInPlainWords: under the status table, the boxes not on the
// controller's time are listed, saying where their time comes from.
func TestTimeSourcesInPlainWords(t *testing.T) {
	devices := []store.DeviceStatus{
		{ID: "loa-01", TimeSource: "controller"},
		{ID: "loa-02", TimeSource: "rtc"},
		{ID: "loa-03", TimeSource: "saved"},
		{ID: "loa-04"}, // a box from before time sources
		{ID: "loa-05", TimeSource: "atomic"},
	}
	for _, tc := range []struct {
		lang string
		want []string
	}{
		{"", []string{
			`time (see README, "Time without the network"):`,
			"  loa-02: its hardware clock (RTC), until the controller answers",
			"  loa-03: no time: only the time saved before it restarted, which is a lower bound; timed items wait, emergencies still sound",
			"  loa-05: atomic",
		}},
		{"vi", []string{
			`giờ (xem README, mục "Time without the network"):`,
			"  loa-02: đồng hồ phần cứng (RTC) của loa, cho đến khi máy chủ trả lời",
			"  loa-03: không biết giờ: chỉ có giờ đã lưu trước khi khởi động lại, là giờ sớm nhất có thể; bản tin hẹn giờ phải chờ, tin khẩn cấp vẫn phát",
			"  loa-05: atomic",
		}},
	} {
		t.Setenv("LOA_LANG", tc.lang)
		var b bytes.Buffer
		printTimeSources(&b, devices)
		if got, want := b.String(), strings.Join(tc.want, "\n")+"\n\n"; got != want {
			t.Errorf("LOA_LANG=%q:\n%s\nwant\n%s", tc.lang, got, want)
		}
	}
	var b bytes.Buffer
	printTimeSources(&b, devices[:1])
	if b.Len() != 0 {
		t.Errorf("a commune on the controller's time: %q", b.String())
	}
}

func TestTimeUnknownInPlainWords(t *testing.T) {
	p := protocol.Problem{Code: protocol.ProblemTimeUnknown, Level: protocol.LevelError, Subject: "saved", Detail: "the time saved before it (2026-03-02 05:00:30 UTC) is only a lower bound"}
	t.Setenv("LOA_LANG", "")
	if got, want := problemWords(p), "does not know the time, so timed items wait (emergencies still sound): the time saved before it (2026-03-02 05:00:30 UTC) is only a lower bound"; got != want {
		t.Errorf("English %q, want %q", got, want)
	}
	t.Setenv("LOA_LANG", "vi")
	if got := problemWords(p); !strings.HasPrefix(got, "không biết giờ nên bản tin hẹn giờ phải chờ") {
		t.Errorf("Vietnamese %q", got)
	}
}
