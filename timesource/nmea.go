package timesource

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// NMEA 0183 sentences that carry the time: RMC (time and date, with the
// receiver's fix status) and ZDA (time and date alone), from any talker
// (GP: GPS, GN: several systems, GL, GA, BD...). A sentence is
// $TTSSS,f1,f2,...*CC with CC the XOR of the bytes between $ and *, in hex.

// Errors of ParseNMEA.
var (
	ErrNMEAChecksum = errors.New("nmea: bad checksum")
	ErrNMEANoFix    = errors.New("nmea: no valid fix")
	ErrNMEAOther    = errors.New("nmea: not a time sentence")
)

// NMEATime is the time a sentence carries.
type NMEATime struct {
	Time time.Time // UTC
	// Fix is true for an RMC whose status is A (valid); a ZDA says
	// nothing of the fix.
	Fix  bool
	Kind string // "RMC" or "ZDA"
}

// ParseNMEA reads one sentence. It returns ErrNMEAOther for sentences that
// carry no time, ErrNMEAChecksum for a damaged one (a checksum is required),
// ErrNMEANoFix for an RMC without a valid fix, and an error for one whose
// fields are not a date and time.
func ParseNMEA(line string) (NMEATime, error) {
	line = strings.TrimRight(line, "\r\n")
	if i := strings.LastIndexByte(line, '$'); i > 0 {
		line = line[i:] // a half sentence before this one on the line
	}
	if len(line) < 7 || line[0] != '$' {
		return NMEATime{}, ErrNMEAOther
	}
	body, sum, ok := strings.Cut(line[1:], "*")
	if !ok || len(sum) != 2 {
		return NMEATime{}, ErrNMEAChecksum
	}
	want, err := strconv.ParseUint(sum, 16, 8)
	if err != nil {
		return NMEATime{}, ErrNMEAChecksum
	}
	var got byte
	for i := 0; i < len(body); i++ {
		got ^= body[i]
	}
	if uint64(got) != want {
		return NMEATime{}, ErrNMEAChecksum
	}
	f := strings.Split(body, ",")
	if len(f[0]) != 5 {
		return NMEATime{}, ErrNMEAOther
	}
	switch f[0][2:] {
	case "RMC":
		// $GPRMC,hhmmss.ss,A,llll.ll,a,yyyyy.yy,a,x.x,x.x,ddmmyy,x.x,a[,m[,s]]*hh
		if len(f) < 10 {
			return NMEATime{}, fmt.Errorf("nmea: RMC with %d fields", len(f))
		}
		if f[2] != "A" {
			return NMEATime{}, ErrNMEANoFix
		}
		if len(f[9]) != 6 {
			return NMEATime{}, fmt.Errorf("nmea: RMC date %q", f[9])
		}
		d, m, y, err := digits3(f[9])
		if err != nil {
			return NMEATime{}, fmt.Errorf("nmea: RMC date %q", f[9])
		}
		// Two-digit years: GPS time began in 1980, so 80..99 are 19xx.
		year := 2000 + y
		if y >= 80 {
			year = 1900 + y
		}
		t, err := nmeaTime(f[1], year, m, d)
		if err != nil {
			return NMEATime{}, err
		}
		return NMEATime{Time: t, Fix: true, Kind: "RMC"}, nil
	case "ZDA":
		// $GPZDA,hhmmss.ss,dd,mm,yyyy,zh,zm*hh (receivers leave the fields
		// empty until they know the time).
		if len(f) < 5 || f[1] == "" || f[2] == "" || f[3] == "" || len(f[4]) != 4 {
			return NMEATime{}, ErrNMEANoFix
		}
		d, err1 := strconv.Atoi(f[2])
		m, err2 := strconv.Atoi(f[3])
		y, err3 := strconv.Atoi(f[4])
		if err := errors.Join(err1, err2, err3); err != nil {
			return NMEATime{}, fmt.Errorf("nmea: ZDA date: %w", err)
		}
		t, err := nmeaTime(f[1], y, m, d)
		if err != nil {
			return NMEATime{}, err
		}
		return NMEATime{Time: t, Kind: "ZDA"}, nil
	}
	return NMEATime{}, ErrNMEAOther
}

// digits3 reads "ddmmyy" (or "hhmmss") as three two-digit numbers.
func digits3(s string) (a, b, c int, err error) {
	if len(s) != 6 {
		return 0, 0, 0, errors.New("not six digits")
	}
	for i := 0; i < 6; i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, 0, 0, errors.New("not six digits")
		}
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), int(s[2]-'0')*10 + int(s[3]-'0'), int(s[4]-'0')*10 + int(s[5]-'0'), nil
}

// nmeaTime reads "hhmmss[.sss]" on the given date, checking every field's
// range (time.Date would roll 31 February over into March).
func nmeaTime(hms string, year, month, day int) (time.Time, error) {
	whole, frac, _ := strings.Cut(hms, ".")
	h, mi, s, err := digits3(whole)
	if err != nil || h > 23 || mi > 59 || s > 60 {
		return time.Time{}, fmt.Errorf("nmea: time %q", hms)
	}
	var ns int
	if frac != "" {
		if len(frac) > 9 {
			return time.Time{}, fmt.Errorf("nmea: time %q", hms)
		}
		n, err := strconv.Atoi(frac)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("nmea: time %q", hms)
		}
		ns = n
		for i := len(frac); i < 9; i++ {
			ns *= 10
		}
	}
	if year < 1980 || year > 9999 || month < 1 || month > 12 || day < 1 || day > 31 {
		return time.Time{}, fmt.Errorf("nmea: date %04d-%02d-%02d", year, month, day)
	}
	t := time.Date(year, time.Month(month), day, h, mi, min(s, 59), ns, time.UTC)
	if t.Day() != day {
		return time.Time{}, fmt.Errorf("nmea: date %04d-%02d-%02d", year, month, day)
	}
	if s == 60 { // a leap second: the last second of the minute, held
		t = t.Add(time.Second - time.Nanosecond)
	}
	return t, nil
}
