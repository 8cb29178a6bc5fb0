package messages

import (
	"maps"
	"strings"

	"github.com/loa-commune/loa/protocol"
)

// reasonKeys are the texts of the reasons boxes give for their answers
// (protocol.Why), and of those the controller writes into the report.
var reasonKeys = map[string]Key{
	protocol.WhyResuming:            "reason_resuming",
	protocol.WhyRestarting:          "reason_restarting",
	protocol.WhyToneFirst:           "reason_tone_first",
	protocol.WhyJoining:             "reason_joining",
	protocol.WhyRejoinPreempted:     "reason_rejoin_preempted",
	protocol.WhyRejoinRestart:       "reason_rejoin_restart",
	protocol.WhyStreamMissed:        "reason_stream_missed",
	protocol.WhyStreamOff:           "reason_stream_off",
	protocol.WhySessionPreempted:    "reason_session_preempted",
	protocol.WhySessionRestart:      "reason_session_restart",
	protocol.WhyQuietHours:          "reason_quiet_hours",
	protocol.WhyReplacedBy:          "reason_replaced_by",
	protocol.WhyPreemptedBy:         "reason_preempted_by",
	protocol.WhyDropped:             "reason_dropped",
	protocol.WhyPreemptedExpired:    "reason_preempted_expired",
	protocol.WhyRestartExpired:      "reason_restart_expired",
	protocol.WhyWindowClosed:        "reason_window_closed",
	protocol.WhyMediaNotReady:       "reason_media_not_ready",
	protocol.WhyToneOnly:            "reason_tone_only",
	protocol.WhyMessageMissing:      "reason_message_missing",
	protocol.WhyExpiredBefore:       "reason_expired_before_plan",
	protocol.WhyRemoved:             "reason_removed",
	protocol.WhyMediaUnplayable:     "reason_media_unplayable",
	protocol.WhyError:               "reason_error",
	protocol.WhyDownloading:         "reason_downloading",
	protocol.WhyDownloadNotBegun:    "reason_download_not_begun",
	protocol.WhyDownloadFailed:      "reason_download_failed",
	protocol.WhyDownloadRetrying:    "reason_download_retrying",
	protocol.WhyNoAnswer:            "reason_no_answer",
	protocol.WhyCancelledUnanswered: "reason_cancelled_unanswered",
}

func init() {
	maps.Copy(english, map[Key]string{
		"reason_resuming":             "resuming at %s s",
		"reason_restarting":           "restarting after a preemption",
		"reason_tone_first":           "media not fetched yet: starting with the alert tone",
		"reason_joining":              "joining the live session at %s s",
		"reason_rejoin_preempted":     "rejoining the live session at %s s after a preemption",
		"reason_rejoin_restart":       "rejoining the live session at %s s after a restart",
		"reason_stream_missed":        "missed %s s of %s s",
		"reason_stream_off":           "%s s not on the output (preempted or restarting)",
		"reason_session_preempted":    "the session ended while it was preempted",
		"reason_session_restart":      "the session ended before the box could rejoin it after a restart",
		"reason_quiet_hours":          "quiet hours",
		"reason_replaced_by":          "replaced by %s",
		"reason_preempted_by":         "preempted by %s",
		"reason_dropped":              "dropped (on_preempt drop)",
		"reason_preempted_expired":    "preempted, and its window closed before it could go on",
		"reason_restart_expired":      "interrupted by a restart, and its window closed before it could play again",
		"reason_window_closed":        "its window closed before it could play (output busy or box off)",
		"reason_media_not_ready":      "media not ready by expiry",
		"reason_tone_only":            "the alert tone played %s times, but the message could not be fetched",
		"reason_message_missing":      "the message was missing from %s of %s repeats (fetched late); the alert tone played every time",
		"reason_expired_before_plan":  "expired before the plan reached the box",
		"reason_removed":              "removed from the plan",
		"reason_media_unplayable":     "media cannot be played: %s",
		"reason_error":                "%s",
		"reason_downloading":          "download still in progress",
		"reason_download_not_begun":   "download not started",
		"reason_download_failed":      "%s",
		"reason_download_retrying":    "%s (retrying)",
		"reason_no_answer":            "no answer: the box did not report playing it (offline, or it failed to sound)",
		"reason_cancelled_unanswered": "cancelled before the box answered",
	})
	maps.Copy(vietnamese, map[Key]string{
		"reason_resuming":             "phát tiếp từ giây %s",
		"reason_restarting":           "phát lại từ đầu sau khi bị ngắt",
		"reason_tone_first":           "chưa tải xong bản tin: phát còi báo động trước",
		"reason_joining":              "vào buổi phát trực tiếp ở giây %s",
		"reason_rejoin_preempted":     "vào lại buổi phát trực tiếp ở giây %s sau khi bị ngắt",
		"reason_rejoin_restart":       "vào lại buổi phát trực tiếp ở giây %s sau khi khởi động lại",
		"reason_stream_missed":        "lỡ %s giây trong %s giây",
		"reason_stream_off":           "%s giây không phát ra loa (bị ngắt hoặc đang khởi động lại)",
		"reason_session_preempted":    "buổi phát kết thúc trong lúc bị ngắt",
		"reason_session_restart":      "buổi phát kết thúc trước khi loa kịp vào lại sau khi khởi động lại",
		"reason_quiet_hours":          "giờ yên tĩnh",
		"reason_replaced_by":          "được thay bằng %s",
		"reason_preempted_by":         "bị ngắt bởi %s",
		"reason_dropped":              "bị bỏ (on_preempt drop)",
		"reason_preempted_expired":    "bị ngắt, và hết thời hạn trước khi kịp phát tiếp",
		"reason_restart_expired":      "bị gián đoạn do khởi động lại, và hết thời hạn trước khi kịp phát lại",
		"reason_window_closed":        "hết thời hạn trước khi kịp phát (loa đang bận hoặc hộp bị tắt)",
		"reason_media_not_ready":      "tệp âm thanh chưa sẵn sàng khi hết hạn",
		"reason_tone_only":            "còi báo động đã phát %s lần, nhưng không tải được bản tin",
		"reason_message_missing":      "bản tin thiếu ở %s trong %s lần lặp (tải về muộn); còi báo động phát đủ mọi lần",
		"reason_expired_before_plan":  "đã hết hạn trước khi lịch phát đến loa",
		"reason_removed":              "đã bị bỏ khỏi lịch phát",
		"reason_media_unplayable":     "không phát được tệp âm thanh: %s",
		"reason_error":                "lỗi: %s",
		"reason_downloading":          "đang tải về",
		"reason_download_not_begun":   "chưa bắt đầu tải về",
		"reason_download_failed":      "tải về bị lỗi: %s",
		"reason_download_retrying":    "tải về bị lỗi: %s (đang thử lại)",
		"reason_no_answer":            "không có trả lời: loa không báo đã phát (mất kết nối, hoặc không phát được)",
		"reason_cancelled_unanswered": "đã hủy trước khi loa trả lời",
	})
}

// Reason says the reason of an answer in lang from its codes, the parts
// joined by "; ". Without codes, or with one this controller does not know
// (a newer box) or whose arguments do not fit, it is fallback: the box's
// own English.
func Reason(lang string, why []protocol.Why, fallback string) string {
	if len(why) == 0 {
		return fallback
	}
	parts := make([]string, 0, len(why))
	for _, w := range why {
		key, ok := reasonKeys[w.Code]
		if !ok || strings.Count(english[key], "%s") != len(w.Args) {
			return fallback
		}
		args := make([]any, len(w.Args))
		for i, a := range w.Args {
			args[i] = a
		}
		parts = append(parts, In(lang, key, args...))
	}
	return strings.Join(parts, "; ")
}
