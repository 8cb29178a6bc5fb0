package messages

import (
	"maps"

	"github.com/loa-commune/loa/protocol"
)

// Where a box's time comes from (protocol.State.TimeSource), as `loa status`
// says it, and the problem time-unknown.
const (
	TimeFromController Key = "time_from_controller"
	TimeFromRTC        Key = "time_from_rtc"
	TimeFromNITZ       Key = "time_from_nitz"
	TimeFromGPS        Key = "time_from_gps"
	TimeFromSystem     Key = "time_from_system"
	TimeFromSaved      Key = "time_from_saved"
	TimeFromNone       Key = "time_from_none"
	TimeFromOther      Key = "time_from_other"
	StatusTimeSources  Key = "status_time_sources"
	ProblemTimeUnknown Key = "problem_time_unknown"
)

func init() {
	maps.Copy(english, map[Key]string{
		TimeFromController: "the controller's time",
		TimeFromRTC:        "its hardware clock (RTC), until the controller answers",
		TimeFromNITZ:       "the mobile network's time from its modem, until the controller answers",
		TimeFromGPS:        "its GPS receiver, until the controller answers",
		TimeFromSystem:     "its system clock, set by NTP, until the controller answers",
		TimeFromSaved:      "no time: only the time saved before it restarted, which is a lower bound; timed items wait, emergencies still sound",
		TimeFromNone:       "no time: no time source answered; timed items wait, emergencies still sound",
		TimeFromOther:      "%s",
		StatusTimeSources:  "time (see README, \"Time without the network\"):",
		ProblemTimeUnknown: "does not know the time, so timed items wait (emergencies still sound): %s",
	})
	maps.Copy(vietnamese, map[Key]string{
		TimeFromController: "giờ của máy chủ",
		TimeFromRTC:        "đồng hồ phần cứng (RTC) của loa, cho đến khi máy chủ trả lời",
		TimeFromNITZ:       "giờ của mạng di động qua modem, cho đến khi máy chủ trả lời",
		TimeFromGPS:        "bộ thu GPS của loa, cho đến khi máy chủ trả lời",
		TimeFromSystem:     "đồng hồ hệ thống, do NTP chỉnh, cho đến khi máy chủ trả lời",
		TimeFromSaved:      "không biết giờ: chỉ có giờ đã lưu trước khi khởi động lại, là giờ sớm nhất có thể; bản tin hẹn giờ phải chờ, tin khẩn cấp vẫn phát",
		TimeFromNone:       "không biết giờ: không có nguồn giờ nào trả lời; bản tin hẹn giờ phải chờ, tin khẩn cấp vẫn phát",
		TimeFromOther:      "%s",
		StatusTimeSources:  "giờ (xem README, mục \"Time without the network\"):",
		ProblemTimeUnknown: "không biết giờ nên bản tin hẹn giờ phải chờ (tin khẩn cấp vẫn phát): %s",
	})
}

// timeSourceWords are the words of each time source a box may report.
var timeSourceWords = map[string]Key{
	"controller": TimeFromController,
	"rtc":        TimeFromRTC,
	"nitz":       TimeFromNITZ,
	"gps":        TimeFromGPS,
	"system":     TimeFromSystem,
	"saved":      TimeFromSaved,
	"none":       TimeFromNone,
}

// TimeSource says in lang where a box's time comes from (protocol.State.TimeSource).
func TimeSource(lang, source string) string {
	if k, ok := timeSourceWords[source]; ok {
		return In(lang, k)
	}
	return In(lang, TimeFromOther, source)
}

// timeProblem says the problem time-unknown.
func timeProblem(lang string, p protocol.Problem) string {
	return In(lang, ProblemTimeUnknown, dash(p.Detail))
}
