package messages

import (
	"strings"
	"testing"

	"github.com/loa-commune/loa/protocol"
)

func TestReason(t *testing.T) {
	why := []protocol.Why{{Code: protocol.WhyMediaNotReady}, {Code: protocol.WhyDownloadRetrying, Args: []string{"HTTP 404"}}}
	for _, tc := range []struct {
		lang string
		why  []protocol.Why
		want string
	}{
		{"en", why, "media not ready by expiry; HTTP 404 (retrying)"},
		{"vi", why, "tệp âm thanh chưa sẵn sàng khi hết hạn; tải về bị lỗi: HTTP 404 (đang thử lại)"},
		{"vi", []protocol.Why{{Code: protocol.WhyNoAnswer}}, "không có trả lời: loa không báo đã phát (mất kết nối, hoặc không phát được)"},
		// What this controller cannot say falls back to the box's English.
		{"vi", nil, "the box's words"},
		{"vi", []protocol.Why{{Code: protocol.WhyQuietHours}, {Code: "from-a-newer-box"}}, "the box's words"},
		{"vi", []protocol.Why{{Code: protocol.WhyReplacedBy}}, "the box's words"}, // its argument is missing
	} {
		if got := Reason(tc.lang, tc.why, "the box's words"); got != tc.want {
			t.Errorf("Reason(%s, %v) = %q, want %q", tc.lang, tc.why, got, tc.want)
		}
	}
}

// TestEveryReasonInBothLanguages: each code has a text in English and in
// Vietnamese that take its arguments, all strings.
func TestEveryReasonInBothLanguages(t *testing.T) {
	for code, key := range reasonKeys {
		en, vi := english[key], vietnamese[key]
		if en == "" || vi == "" {
			t.Errorf("reason %s has no English or no Vietnamese text", code)
			continue
		}
		if strings.Count(en, "%") != strings.Count(en, "%s") || strings.Count(en, "%s") != strings.Count(vi, "%s") {
			t.Errorf("reason %s: %q and %q do not take the same string arguments", code, en, vi)
		}
	}
}
