package messages

import (
	"fmt"
	"os"
	"strings"
)

// Key names one message.
type Key string

// Messages. Keep the English plain and say what to do next.
const (
	BadRequest          Key = "bad_request"
	Unauthorized        Key = "unauthorized"
	NotFound            Key = "not_found"
	UnknownDevice       Key = "unknown_device"
	UnknownGroup        Key = "unknown_group"
	UnknownMedia        Key = "unknown_media"
	UnknownRule         Key = "unknown_rule"
	DeviceExists        Key = "device_exists"
	BadName             Key = "bad_name"
	BadVolume           Key = "bad_volume"
	BadLocation         Key = "bad_location"
	LocationBoth        Key = "location_both"
	BadCron             Key = "bad_cron"
	BadTime             Key = "bad_time"
	TimeInPast          Key = "time_in_past"
	NoTarget            Key = "no_target"
	NoMedia             Key = "no_media"
	BadMedia            Key = "bad_media"
	MediaTooBig         Key = "media_too_big"
	MediaTooLong        Key = "media_too_long"
	MediaSilent         Key = "media_silent"
	MediaTimeout        Key = "media_timeout"
	NoFFmpeg            Key = "no_ffmpeg"
	MediaInUse          Key = "media_in_use"
	BadPriority         Key = "bad_priority"
	BadRepeat           Key = "bad_repeat"
	Internal            Key = "internal"
	ServerUnreachable   Key = "server_unreachable"
	NoToken             Key = "no_token"
	Forbidden           Key = "forbidden"
	TokenExpired        Key = "token_expired"
	TokenRevoked        Key = "token_revoked"
	TokenExists         Key = "token_exists"
	UnknownToken        Key = "unknown_token"
	ReservedToken       Key = "reserved_token"
	BadRole             Key = "bad_role"
	BadExpiry           Key = "bad_expiry"
	NoKeyRotation       Key = "no_key_rotation"
	KeyBoxesWaiting     Key = "key_boxes_waiting"
	WaitTimeout         Key = "wait_timeout"
	WaitFailed          Key = "wait_failed"
	BadTone             Key = "bad_tone"
	NoSpeech            Key = "no_speech"
	SpeechFailed        Key = "speech_failed"
	NoSuchEmergency     Key = "no_such_emergency"
	NoActiveEmergency   Key = "no_active_emergency"
	ConfirmEmergency    Key = "confirm_emergency"
	NotConfirmed        Key = "not_confirmed"
	BadCAP              Key = "bad_cap"
	CAPExpired          Key = "cap_expired"
	CAPNoArea           Key = "cap_no_area"
	StormEmbeddedOnly   Key = "storm_embedded_only"
	BenchAttachBroker   Key = "bench_attach_broker"
	BrokerFormat        Key = "broker_format"
	BrokerNoPassword    Key = "broker_no_password"
	BrokerNoDatabase    Key = "broker_no_database"
	BrokerLeftOut       Key = "broker_left_out"
	BrokerWrongData     Key = "broker_wrong_data"
	RateLimited         Key = "rate_limited"
	TLSUntrusted        Key = "tls_untrusted"
	TLSNeeded           Key = "tls_needed"
	BadCAFile           Key = "bad_ca_file"
	PKIInitDone         Key = "pki_init_done"
	PKIServerDone       Key = "pki_server_done"
	PKIBoxDone          Key = "pki_box_done"
	BadLimit            Key = "bad_limit"
	BadState            Key = "bad_state"
	BadReportStatus     Key = "bad_report_status"
	BadCursor           Key = "bad_cursor"
	PageShowing         Key = "page_showing"
	PageNext            Key = "page_next"
	PageEmpty           Key = "page_empty"
	StatusCounts        Key = "status_counts"
	ReportCounts        Key = "report_counts"
	ReportPerRule       Key = "report_per_rule"
	ConfirmLive         Key = "confirm_live"
	NoSuchSession       Key = "no_such_session"
	SessionOver         Key = "session_over"
	RelayBadURL         Key = "relay_bad_url"
	RelayUnreachable    Key = "relay_unreachable"
	RelayNotAStream     Key = "relay_not_a_stream"
	LiveNoSound         Key = "live_no_sound"
	LiveBadAudio        Key = "live_bad_audio"
	LiveSilent          Key = "live_silent"
	LiveClipping        Key = "live_clipping"
	LiveOnAir           Key = "live_on_air"
	LiveEnded           Key = "live_ended"
	RelayOnAir          Key = "relay_on_air"
	BadLength           Key = "bad_length"
	EnrolWrongCode      Key = "enrol_wrong_code"
	EnrolUsed           Key = "enrol_used"
	EnrolExpired        Key = "enrol_expired"
	EnrolTooMany        Key = "enrol_too_many"
	EnrolValidity       Key = "enrol_validity"
	EnrolCode           Key = "enrol_code"
	BuildBadVersion     Key = "build_bad_version"
	BuildNotAgent       Key = "build_not_agent"
	BuildVersionMissing Key = "build_version_missing"
	UnknownBuild        Key = "unknown_build"
	RolloutPercent      Key = "rollout_percent"
	RolloutBuilds       Key = "rollout_builds"
	RolloutUnderWay     Key = "rollout_under_way"
	NoRollout           Key = "no_rollout"
	RolloutNothingToDo  Key = "rollout_nothing_to_do"
	NoCapture           Key = "no_capture"
	NoRecording         Key = "no_recording"
)

var english = map[Key]string{
	BadRequest:          "the request is not valid: %s",
	Unauthorized:        "not allowed: give the admin token with --token or LOA_TOKEN (it is in the controller's data folder, admin.token)",
	NotFound:            "not found: %s",
	UnknownDevice:       "no box with id %q: see `loa device list`, or add it with `loa device add %s`",
	UnknownGroup:        "no group %q: see `loa group list`, or create it with `loa group add %s BOX...`",
	UnknownMedia:        "no media %q: see `loa media list`, or add a file with `loa media add FILE`",
	UnknownRule:         "no announcement or schedule %q: see `loa schedule list` or `loa report`",
	DeviceExists:        "a box with id %q already exists: choose another id, or remove it first with `loa device rm %s`",
	BadName:             "%s",
	BadVolume:           "volume must be a number from 0 to 100, not %q",
	BadLocation:         "a box's place is a latitude from -90 to 90 and a longitude from -180 to 180 (like 21.03 and 105.85), not %s and %s",
	LocationBoth:        "give both the latitude and the longitude of the box, or neither",
	BadCron:             "%s",
	BadTime:             "cannot read the time %q: write it like 2026-12-01 06:00, 06:00 (the next one), or 2026-12-01T06:00:00+07:00",
	TimeInPast:          "the time %s is in the past: give a later time, or leave out --at to play now",
	NoTarget:            "say where to play: --all, --group VILLAGE or --device BOX",
	NoMedia:             "say what to play: --media ID, --file PATH or --text \"...\"",
	BadMedia:            "Loa cannot read this file as sound (%s): send a recording such as MP3, M4A, Opus, WAV, WMA or AMR, or a video with sound",
	MediaTooBig:         "the file is too big (%s): send a shorter recording or a smaller file",
	MediaTooLong:        "the recording is too long (%s): cut it into shorter parts",
	MediaSilent:         "the recording is silent (%s): check the microphone and record it again",
	MediaTimeout:        "preparing the file took too long (%s): try again, or send a shorter file",
	NoFFmpeg:            "the controller cannot convert sound (%s): install ffmpeg on it (apt-get install ffmpeg) and restart loa serve",
	MediaInUse:          "media %s is used by %d announcement(s) or schedule(s): cancel or remove those first",
	BadPriority:         "%s",
	BadRepeat:           "repeat must be from 1 to %d",
	Internal:            "the controller failed: %s (see its log)",
	ServerUnreachable:   "cannot reach the Loa controller at %s: is `loa serve` running? (set --server or LOA_SERVER)",
	NoToken:             "no admin token: pass --token, set LOA_TOKEN, or run on the controller machine with --data pointing at its data folder",
	Forbidden:           "token %q has the %s role, and this needs %s: ask an admin for a token with that role (`loa token add NAME --role %s`)",
	TokenExpired:        "token %q expired at %s: ask an admin for a new one (`loa token add`)",
	TokenRevoked:        "token %q was revoked: ask an admin for a new one (`loa token add`)",
	TokenExists:         "a token named %q already exists: choose another name, or revoke it first with `loa token revoke %s`",
	UnknownToken:        "no active token named %q: see `loa token list`",
	ReservedToken:       "%q is the name of the bootstrap admin token (admin.token in the controller's data folder): choose another name; to replace that token, delete the file and restart `loa serve`",
	BadRole:             "unknown role %q: use admin, operator, viewer or trigger",
	BadExpiry:           "the expiry must be a positive duration like 720h (30 days), not %q",
	NoKeyRotation:       "no key rotation is in progress: start one with `loa key rotate`",
	KeyBoxesWaiting:     "%d boxes were not heard from since the rotation started and may not know the new key yet: %v. Wait until they are online, or finish with --force and provision them again",
	WaitTimeout:         "gave up waiting after %s: %d of %d boxes answered; see `loa report` later",
	WaitFailed:          "%d of %d boxes did not play it; see `loa report`",
	BadTone:             "unknown alert tone %q: use siren, flood, storm, fire or other",
	NoSpeech:            "text to speech is not set up on the controller: upload a recording with --file instead",
	SpeechFailed:        "could not turn the text into speech: %s",
	NoSuchEmergency:     "no active emergency %q: see `loa emergency list`",
	NoActiveEmergency:   "there is no active emergency to cancel",
	ConfirmEmergency:    "EMERGENCY on %s. Every loudspeaker there will sound the alarm now.\nType %q to confirm: ",
	NotConfirmed:        "not confirmed: nothing was sent (to skip this question, add --yes)",
	BadCAP:              "this is not a valid CAP 1.2 alert, nothing was changed: %s",
	CAPExpired:          "this CAP alert has already expired, nothing was broadcast: %s",
	CAPNoArea:           "%s: add its area to cap.areas in the controller config",
	StormEmbeddedOnly:   "--storm restarts the controller's embedded broker: leave out --broker and --attach",
	BenchAttachBroker:   "with --attach, say where the boxes connect: --box-broker tcp://HOST:1883 (the controller's broker)",
	BrokerFormat:        "unknown broker format %q: use mosquitto or nats",
	BrokerNoPassword:    "the controller has no broker password: set broker_password in the controller config and pass it with --config (for example broker_password: %s), then run this again and restart `loa serve` with that config",
	BrokerNoDatabase:    "warning: no controller database at %s yet, so only the controller user was written: run this again once `loa serve` has started and boxes are added (--data is the controller's data folder)",
	BrokerLeftOut:       "warning: left out %s: no broker password is stored for them (registered before Loa kept one), so they cannot connect through this broker; remove and add them again (`loa device rm ID`, `loa device add ID`) and install their new agent configs",
	BrokerWrongData:     "no controller database at %s, yet %s already lets %d boxes in: nothing was written (point --data at the controller's data folder)",
	RateLimited:         "too many requests: wait %d s and try again (the controller limits each token, box and address so that none can crowd out the others)",
	TLSUntrusted:        "the controller at %s has a certificate this computer does not trust (%v): pass --ca FILE or set LOA_CA to the commune's ca.crt (`loa pki init` wrote it; on the controller's machine it is also in the data folder)",
	TLSNeeded:           "the controller at %s speaks only HTTPS: use --server %s (or LOA_SERVER)",
	BadCAFile:           "cannot use %s as the CA certificate (--ca, LOA_CA): %v",
	PKIInitDone:         "Add to the controller's config and restart `loa serve`: the API then serves HTTPS and the broker MQTT over TLS.\n  tls_cert: %s\n  tls_key: %s\n  # tls_client_ca: %s   # also require box certificates (`loa pki box ID`)\nSet public_server_url to https://%s:8080 and public_broker_url to ssl://%s:1883. Boxes added after the restart get the CA in their config (`loa device add ID --write-config FILE`); give boxes added before a new config. Keep ca.key off the network: it signs new certificates.",
	PKIServerDone:       "Restart `loa serve` to use it; boxes need no change (same CA).",
	BadLimit:            "the page size (--limit) must be a whole number from 1 to %d, not %q",
	BadState:            "unknown state %q: use one of %s",
	BadReportStatus:     "unknown status %q: use one of %s",
	BadCursor:           "cannot continue after %q: pass --after exactly as the last page printed it, or leave it out to start from the first page",
	PageShowing:         "showing %d–%d of %d",
	PageNext:            "next page: add --after %s",
	PageEmpty:           "nothing matches these filters",
	StatusCounts:        "boxes by state: %s",
	ReportCounts:        "rows by status: %s",
	ReportPerRule:       "per announcement on this page (all its rows within the filters):",
	ConfirmLive:         "LIVE on %s: every loudspeaker there will play what you say now.\nType %q to confirm: ",
	NoSuchSession:       "no live session %q: see `loa report --sessions`",
	SessionOver:         "session %q has already ended",
	RelayBadURL:         "the stream's address must start with http:// or https://, not %q",
	RelayUnreachable:    "cannot reach the stream %s (%s): check the address, and that the station is on air and reachable from the controller",
	RelayNotAStream:     "%s is not a sound stream Loa can relay (%s): give the address of the station's MP3 or AAC stream or of its HLS playlist (.m3u8), not of a web page",
	LiveNoSound:         "no sound reached the controller within %s, so the session was ended: check the microphone and the network, then start again",
	LiveBadAudio:        "the sound sent for a live session is not Ogg Opus (%s): use `loa live`, which sends it in the right form",
	LiveSilent:          "warning: the input is silent: check that the microphone is plugged in, switched on and not muted",
	LiveClipping:        "warning: the input is too loud (clipping): speak further from the microphone or turn its gain down",
	LiveOnAir:           "On air on %d box(es) (session %s). Speak now; press Ctrl-C to stop.",
	LiveEnded:           "Session %s ended: %s.",
	RelayOnAir:          "Relaying %s to %d box(es) (session %s) until %s; stop it with `loa relay stop %s`.",
	BadLength:           "the length must be a positive duration no longer than %s (like 10m or 1h), not %q",
	EnrolWrongCode:      "this enrolment code is not one the controller made: check it, or ask the commune office for a new one (`loa device enroll ID`)",
	EnrolUsed:           "this enrolment code was already used at %s (from %s): each code works once; ask the commune office for a new one (`loa device enroll %s`)",
	EnrolExpired:        "this enrolment code expired at %s: ask the commune office for a new one (`loa device enroll %s`)",
	EnrolTooMany:        "too many enrolment attempts in a short time (the controller limits them so that no one can guess a code): wait %d s and try again",
	EnrolValidity:       "--valid must be a duration from 1m to %s (like 2h or 72h), not %q",
	EnrolCode:           "On the box, within %s (until %s), run:\n  loa-agent enroll %s %s\nThe code works once.",
	BuildBadVersion:     "the version must look like 1.4.0 or v1.4.0 (MAJOR.MINOR.PATCH), not %q",
	BuildNotAgent:       "this file cannot be an agent build: %s",
	BuildVersionMissing: "this file does not contain the version %s: build it with that version (make cross VERSION=%s) so that boxes report what they run",
	UnknownBuild:        "no agent build %s: publish it with `loa agent publish FILE --version V`",
	RolloutPercent:      "--percent must be from 1 to 100, not %d",
	RolloutBuilds:       "a rollout of %s needs one published build of that version per architecture",
	RolloutUnderWay:     "%s: see `loa agent rollout status`, then let it finish or `loa agent rollout abort`",
	NoRollout:           "no agent rollout under way (`loa agent publish FILE --version V` starts one)",
	RolloutNothingToDo:  "every target box already runs %s or newer, and a box never installs an older build: nothing was rolled out",
	NoCapture:           "cannot capture sound on this computer (%s): install ffmpeg (apt-get install ffmpeg), or pass --file PATH or - (standard input)",
	NoRecording:         "session %q has no recording (it was not recorded, or it is older than live.recordings_keep_days)",
	PKIBoxDone:          "Copy both files to the box (e.g. /etc/loa-agent/, the key readable only by loa-agent) and add to its config:\n  cert_file: /etc/loa-agent/%s\n  key_file: /etc/loa-agent/%s",
}

var vietnamese = map[Key]string{
	BadRequest:          "yêu cầu không hợp lệ: %s",
	NotFound:            "không tìm thấy: %s",
	UnknownRule:         "không có thông báo hay lịch phát %q: xem `loa schedule list` hoặc `loa report`",
	BadName:             "%s",
	BadVolume:           "âm lượng phải là số từ 0 đến 100, không phải %q",
	BadCron:             "%s",
	BadTime:             "không đọc được thời điểm %q: hãy viết như 2026-12-01 06:00, 06:00 (lần tới), hoặc 2026-12-01T06:00:00+07:00",
	BadPriority:         "%s",
	BadRepeat:           "số lần phát phải từ 1 đến %d",
	Internal:            "máy điều khiển gặp lỗi: %s (xem nhật ký của nó)",
	NoToken:             "không có mã quản trị: dùng --token, đặt LOA_TOKEN, hoặc chạy trên máy điều khiển với --data là thư mục dữ liệu của nó",
	WaitTimeout:         "thôi chờ sau %s: %d trên %d loa đã trả lời; xem `loa report` sau",
	WaitFailed:          "%d trên %d loa không phát được; xem `loa report`",
	BadTone:             "không có tiếng báo động %q: dùng siren, flood, storm, fire hoặc other",
	NoSpeech:            "máy điều khiển chưa cài đọc văn bản thành giọng nói: hãy gửi bản ghi âm bằng --file",
	SpeechFailed:        "không đọc được văn bản thành giọng nói: %s",
	NoSuchEmergency:     "không có báo động khẩn cấp %q đang phát: xem `loa emergency list`",
	BadCAP:              "đây không phải cảnh báo CAP 1.2 hợp lệ, không có gì thay đổi: %s",
	CAPExpired:          "cảnh báo CAP này đã hết hạn, không phát gì: %s",
	CAPNoArea:           "%s: thêm vùng này vào cap.areas trong cấu hình máy điều khiển",
	StormEmbeddedOnly:   "--storm khởi động lại broker có sẵn trong máy điều khiển: bỏ --broker và --attach",
	BenchAttachBroker:   "với --attach, hãy cho biết các loa kết nối vào đâu: --box-broker tcp://MÁY:1883 (broker của máy điều khiển)",
	BrokerFormat:        "không có kiểu broker %q: dùng mosquitto hoặc nats",
	BrokerNoPassword:    "máy điều khiển chưa có mật khẩu broker: đặt broker_password trong cấu hình máy điều khiển và truyền bằng --config (ví dụ broker_password: %s), rồi chạy lại lệnh này và khởi động lại `loa serve` với cấu hình đó",
	BrokerNoDatabase:    "cảnh báo: chưa có cơ sở dữ liệu của máy điều khiển tại %s, nên chỉ ghi người dùng của máy điều khiển: chạy lại lệnh này khi `loa serve` đã chạy và đã thêm loa (--data là thư mục dữ liệu của máy điều khiển)",
	BrokerWrongData:     "không có cơ sở dữ liệu của máy điều khiển tại %s, mà %s đã cho %d loa kết nối: không ghi gì (hãy trỏ --data vào thư mục dữ liệu của máy điều khiển)",
	BrokerLeftOut:       "cảnh báo: bỏ qua %s: chưa lưu mật khẩu broker của chúng (đăng ký từ trước khi Loa lưu mật khẩu), nên chúng không kết nối được qua broker này; hãy xoá rồi thêm lại (`loa device rm ID`, `loa device add ID`) và cài cấu hình mới cho phần mềm trên hộp loa",
	BadCAFile:           "không dùng được %s làm chứng chỉ CA (--ca, LOA_CA): %v",
	PKIInitDone:         "Thêm vào cấu hình máy điều khiển rồi khởi động lại `loa serve`: khi đó API phục vụ HTTPS và broker phục vụ MQTT qua TLS.\n  tls_cert: %s\n  tls_key: %s\n  # tls_client_ca: %s   # bắt buộc cả chứng chỉ của hộp loa (`loa pki box ID`)\nĐặt public_server_url là https://%s:8080 và public_broker_url là ssl://%s:1883. Hộp loa thêm sau khi khởi động lại sẽ có CA trong cấu hình (`loa device add ID --write-config TỆP`); hộp thêm trước cần cấu hình mới. Giữ ca.key ngoài mạng: nó ký chứng chỉ mới.",
	PKIServerDone:       "Khởi động lại `loa serve` để dùng; các hộp loa không cần thay đổi (cùng CA).",
	PKIBoxDone:          "Chép cả hai tệp vào hộp loa (ví dụ /etc/loa-agent/, khoá chỉ loa-agent đọc được) và thêm vào cấu hình của nó:\n  cert_file: /etc/loa-agent/%s\n  key_file: /etc/loa-agent/%s",
	Unauthorized:        "không có quyền: dùng --token hoặc LOA_TOKEN (mã nằm trong tệp admin.token ở thư mục dữ liệu của máy chủ)",
	UnknownDevice:       "không có loa %q: xem `loa device list`, hoặc thêm bằng `loa device add %s`",
	UnknownGroup:        "không có nhóm %q: xem `loa group list`, hoặc tạo bằng `loa group add %s LOA...`",
	UnknownMedia:        "không có tệp âm thanh %q: xem `loa media list`, hoặc thêm bằng `loa media add TỆP`",
	DeviceExists:        "đã có loa mang mã %q: chọn mã khác, hoặc xoá trước bằng `loa device rm %s`",
	BadLocation:         "vị trí của loa là vĩ độ từ -90 đến 90 và kinh độ từ -180 đến 180 (như 21.03 và 105.85), không phải %s và %s",
	LocationBoth:        "hãy cho cả vĩ độ và kinh độ của loa, hoặc bỏ cả hai",
	NoTarget:            "chọn nơi phát: --all, --group THÔN hoặc --device LOA",
	NoMedia:             "chọn nội dung phát: --media MÃ, --file TỆP hoặc --text \"...\"",
	BadMedia:            "Loa không đọc được tệp này như âm thanh (%s): hãy gửi bản ghi âm MP3, M4A, Opus, WAV, WMA hoặc AMR, hoặc video có tiếng",
	MediaTooBig:         "tệp quá lớn (%s): hãy gửi bản ghi ngắn hơn hoặc tệp nhỏ hơn",
	MediaTooLong:        "bản ghi quá dài (%s): hãy cắt thành nhiều phần ngắn hơn",
	MediaSilent:         "bản ghi không có tiếng (%s): hãy kiểm tra micrô và ghi âm lại",
	MediaTimeout:        "xử lý tệp quá lâu (%s): hãy thử lại, hoặc gửi tệp ngắn hơn",
	MediaInUse:          "tệp âm thanh %s đang được %d thông báo hoặc lịch phát dùng: hãy huỷ hoặc xoá chúng trước",
	NoFFmpeg:            "máy điều khiển không chuyển đổi được âm thanh (%s): hãy cài ffmpeg (apt-get install ffmpeg) rồi khởi động lại loa serve",
	TimeInPast:          "thời điểm %s đã qua: chọn giờ muộn hơn, hoặc bỏ --at để phát ngay",
	ServerUnreachable:   "không kết nối được máy chủ Loa tại %s: `loa serve` có đang chạy không? (đặt --server hoặc LOA_SERVER)",
	NoActiveEmergency:   "không có báo động khẩn cấp nào đang phát để huỷ",
	ConfirmEmergency:    "BÁO ĐỘNG KHẨN CẤP tại %s. Mọi loa ở đó sẽ phát còi báo động ngay.\nGõ %q để xác nhận: ",
	NotConfirmed:        "chưa xác nhận: không có gì được gửi (thêm --yes để bỏ qua câu hỏi này)",
	Forbidden:           "mã %q có vai trò %s, việc này cần vai trò %s: nhờ quản trị viên cấp mã có vai trò đó (`loa token add TÊN --role %s`)",
	TokenExpired:        "mã %q đã hết hạn lúc %s: nhờ quản trị viên cấp mã mới (`loa token add`)",
	TokenRevoked:        "mã %q đã bị thu hồi: nhờ quản trị viên cấp mã mới (`loa token add`)",
	TokenExists:         "đã có mã mang tên %q: chọn tên khác, hoặc thu hồi mã đó trước bằng `loa token revoke %s`",
	UnknownToken:        "không có mã nào đang dùng mang tên %q: xem `loa token list`",
	ReservedToken:       "%q là tên của mã quản trị ban đầu (tệp admin.token trong thư mục dữ liệu của máy chủ): chọn tên khác; muốn thay mã đó, xoá tệp rồi khởi động lại `loa serve`",
	BadRole:             "không có vai trò %q: dùng admin, operator, viewer hoặc trigger",
	BadExpiry:           "thời hạn phải là một khoảng thời gian dương như 720h (30 ngày), không phải %q",
	NoKeyRotation:       "không có việc đổi khoá nào đang diễn ra: bắt đầu bằng `loa key rotate`",
	KeyBoxesWaiting:     "%d hộp chưa liên lạc từ khi bắt đầu đổi khoá nên có thể chưa biết khoá mới: %v. Chờ các hộp trực tuyến, hoặc dùng --force rồi cấu hình lại các hộp đó",
	RateLimited:         "quá nhiều yêu cầu: chờ %d giây rồi thử lại (máy chủ giới hạn số yêu cầu của mỗi mã, mỗi loa và mỗi địa chỉ để không nơi nào lấn át các nơi khác)",
	TLSUntrusted:        "máy chủ Loa tại %s dùng chứng chỉ mà máy này không tin cậy (%v): dùng --ca TỆP hoặc đặt LOA_CA là tệp ca.crt của xã (`loa pki init` đã tạo; trên máy chủ còn có trong thư mục dữ liệu)",
	TLSNeeded:           "máy chủ Loa tại %s chỉ nhận HTTPS: dùng --server %s (hoặc LOA_SERVER)",
	BadLimit:            "số dòng mỗi trang (--limit) phải là số nguyên từ 1 đến %d, không phải %q",
	BadState:            "không có trạng thái %q: dùng một trong %s",
	BadReportStatus:     "không có kết quả %q: dùng một trong %s",
	BadCursor:           "không thể xem tiếp sau %q: dùng --after đúng như trang trước đã in, hoặc bỏ đi để xem từ trang đầu",
	PageShowing:         "đang hiện %d–%d trên tổng %d",
	PageNext:            "trang sau: thêm --after %s",
	PageEmpty:           "không có kết quả nào khớp bộ lọc này",
	StatusCounts:        "số loa theo trạng thái: %s",
	ReportCounts:        "số dòng theo kết quả: %s",
	ReportPerRule:       "theo từng thông báo trên trang này (mọi dòng trong bộ lọc):",
	ConfirmLive:         "PHÁT TRỰC TIẾP tới %s: mọi loa ở đó sẽ phát những gì bạn nói.\nGõ %q để xác nhận: ",
	NoSuchSession:       "không có phiên phát trực tiếp %q: xem `loa report --sessions`",
	SessionOver:         "phiên %q đã kết thúc",
	RelayBadURL:         "địa chỉ luồng phải bắt đầu bằng http:// hoặc https://, không phải %q",
	RelayUnreachable:    "không kết nối được luồng %s (%s): hãy kiểm tra địa chỉ, và đài có đang phát và máy chủ có tới được không",
	RelayNotAStream:     "%s không phải luồng âm thanh Loa tiếp sóng được (%s): hãy dùng địa chỉ luồng MP3 hoặc AAC hoặc danh sách HLS (.m3u8) của đài, không phải một trang web",
	LiveNoSound:         "không có âm thanh nào tới máy chủ trong %s nên phiên đã kết thúc: hãy kiểm tra micrô và mạng rồi bắt đầu lại",
	LiveBadAudio:        "âm thanh gửi cho phiên trực tiếp không phải Ogg Opus (%s): hãy dùng `loa live`",
	LiveSilent:          "cảnh báo: không có tiếng vào: hãy kiểm tra micrô đã cắm, đã bật và không bị tắt tiếng",
	LiveClipping:        "cảnh báo: tiếng vào quá to (bị rè): hãy nói xa micrô hơn hoặc giảm độ nhạy",
	LiveOnAir:           "Đang phát trực tiếp tới %d loa (phiên %s). Hãy nói; bấm Ctrl-C để dừng.",
	LiveEnded:           "Phiên %s đã kết thúc: %s.",
	RelayOnAir:          "Đang tiếp sóng %s tới %d loa (phiên %s) đến %s; dừng bằng `loa relay stop %s`.",
	BadLength:           "thời lượng phải là khoảng thời gian dương không quá %s (như 10m hoặc 1h), không phải %q",
	EnrolWrongCode:      "mã đăng ký này không do máy chủ tạo ra: kiểm tra lại, hoặc xin văn phòng xã mã mới (`loa device enroll ID`)",
	EnrolUsed:           "mã đăng ký này đã được dùng lúc %s (từ %s): mỗi mã chỉ dùng một lần; xin văn phòng xã mã mới (`loa device enroll %s`)",
	EnrolExpired:        "mã đăng ký này đã hết hạn lúc %s: xin văn phòng xã mã mới (`loa device enroll %s`)",
	EnrolTooMany:        "có quá nhiều lần đăng ký trong thời gian ngắn (máy chủ giới hạn để không ai đoán được mã): chờ %d giây rồi thử lại",
	EnrolValidity:       "--valid phải là khoảng thời gian từ 1m đến %s (như 2h hoặc 72h), không phải %q",
	EnrolCode:           "Trên hộp loa, trong vòng %s (đến %s), chạy:\n  loa-agent enroll %s %s\nMã chỉ dùng được một lần.",
	BuildBadVersion:     "phiên bản phải có dạng 1.4.0 hoặc v1.4.0 (MAJOR.MINOR.PATCH), không phải %q",
	BuildNotAgent:       "tệp này không thể là bản dựng của phần mềm loa: %s",
	BuildVersionMissing: "tệp này không chứa phiên bản %s: hãy dựng với đúng phiên bản đó (make cross VERSION=%s) để các loa báo đúng phiên bản đang chạy",
	UnknownBuild:        "không có bản dựng %s: đăng bằng `loa agent publish TỆP --version V`",
	RolloutPercent:      "--percent phải từ 1 đến 100, không phải %d",
	RolloutBuilds:       "đợt cập nhật %s cần một bản dựng đã đăng của phiên bản đó cho mỗi kiến trúc",
	RolloutUnderWay:     "%s: xem `loa agent rollout status`, rồi chờ xong hoặc `loa agent rollout abort`",
	NoRollout:           "không có đợt cập nhật nào đang chạy (`loa agent publish TỆP --version V` để bắt đầu)",
	RolloutNothingToDo:  "mọi loa được chọn đã chạy %s hoặc mới hơn, và loa không bao giờ cài bản cũ hơn: không có gì được cập nhật",
	NoRecording:         "phiên %q không có bản ghi (không được ghi, hoặc đã quá live.recordings_keep_days)",
	NoCapture:           "không thu được âm thanh trên máy này (%s): hãy cài ffmpeg (apt-get install ffmpeg), hoặc dùng --file TỆP hoặc - (đầu vào chuẩn)",
}

// T formats the message for key in the language chosen by LOA_LANG
// ("vi" for Vietnamese; English otherwise or where no translation exists).
func T(key Key, args ...any) string { return In(os.Getenv("LOA_LANG"), key, args...) }

// In formats the message for key in lang ("vi…" for Vietnamese; English
// otherwise or where no translation exists).
func In(lang string, key Key, args ...any) string {
	format, ok := "", false
	if strings.HasPrefix(lang, "vi") {
		format, ok = vietnamese[key]
	}
	if !ok {
		format, ok = english[key]
	}
	if !ok {
		format = string(key) + ": %v"
	}
	return fmt.Sprintf(format, args...)
}

// Has says whether key has a text in lang ("en" or "vi").
func Has(lang string, key Key) bool {
	if strings.HasPrefix(lang, "vi") {
		_, ok := vietnamese[key]
		return ok
	}
	_, ok := english[key]
	return ok
}

// Error is an error that carries a message key, so the API can send the key
// and the CLI can show it in the user's language.
type Error struct {
	Key  Key
	Args []any
}

// New returns an *Error for key.
func New(key Key, args ...any) *Error { return &Error{Key: key, Args: args} }

func (e *Error) Error() string { return T(e.Key, e.Args...) }

// In is the message in lang (see In).
func (e *Error) In(lang string) string { return In(lang, e.Key, e.Args...) }

// Short cuts a text to its first 40 characters (with an ellipsis) for
// tables, names and logs.
func Short(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}
