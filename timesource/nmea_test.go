package timesource

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// sentence adds the checksum to body ("GPRMC,...").
func sentence(body string) string {
	var x byte
	for i := 0; i < len(body); i++ {
		x ^= body[i]
	}
	return fmt.Sprintf("$%s*%02X", body, x)
}

func TestParseNMEA(t *testing.T) {
	rmc := "GPRMC,060000.00,A,2105.1234,N,10551.5678,E,0.01,,020326,,,A"
	tests := []struct {
		name string
		line string
		want time.Time
		fix  bool
		err  error
	}{
		{"gps rmc", sentence(rmc), time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC), true, nil},
		{"multi-system rmc with crlf", sentence("GNRMC,235959.250,A,2105.1,N,10551.5,E,,,311226,,,D") + "\r\n",
			time.Date(2026, 12, 31, 23, 59, 59, 250e6, time.UTC), true, nil},
		{"lower case checksum", "$GPRMC,060000,A,1,N,1,E,,,020326,,*" + fmt.Sprintf("%02x", checksum("GPRMC,060000,A,1,N,1,E,,,020326,,")),
			time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC), true, nil},
		{"rmc without fix", sentence("GPRMC,060000.00,V,,,,,,,020326,,,N"), time.Time{}, false, ErrNMEANoFix},
		{"zda", sentence("GPZDA,101530.00,02,03,2026,00,00"), time.Date(2026, 3, 2, 10, 15, 30, 0, time.UTC), false, nil},
		{"zda before the time is known", sentence("GPZDA,,,,,,"), time.Time{}, false, ErrNMEANoFix},
		{"leap second", sentence("GPZDA,235960.00,31,12,2026,00,00"), time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC), false, nil},
		{"bad checksum", "$GPRMC,060000.00,A,2105.1234,N,10551.5678,E,0.01,,020326,,,A*00", time.Time{}, false, ErrNMEAChecksum},
		{"no checksum", "$" + rmc, time.Time{}, false, ErrNMEAChecksum},
		{"other sentence", sentence("GPGGA,060000.00,2105.1,N,10551.5,E,1,08,0.9,545.4,M,46.9,M,,"), time.Time{}, false, ErrNMEAOther},
		{"noise", "garbage", time.Time{}, false, ErrNMEAOther},
		{"half a sentence before", "4,N,1055" + sentence(rmc), time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC), true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNMEA(tc.line)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParseNMEA(%q) error %v, want %v", tc.line, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNMEA(%q): %v", tc.line, err)
			}
			if !got.Time.Equal(tc.want) || got.Fix != tc.fix {
				t.Fatalf("ParseNMEA(%q) = %v fix %v, want %v fix %v", tc.line, got.Time, got.Fix, tc.want, tc.fix)
			}
		})
	}
	for _, bad := range []string{
		sentence("GPRMC,250000.00,A,1,N,1,E,,,020326,,"), // hour 25
		sentence("GPRMC,060000.00,A,1,N,1,E,,,310226,,"), // 31 February
		sentence("GPRMC,060000.00,A,1,N,1,E,,,0203,,"),   // short date
		sentence("GPRMC,06x000.00,A,1,N,1,E,,,020326,,"),
		sentence("GPZDA,101530.00,02,13,2026,00,00"), // month 13
		sentence("GPRMC,060000.00,A"),
	} {
		if _, err := ParseNMEA(bad); err == nil {
			t.Errorf("ParseNMEA(%q) accepted", bad)
		}
	}
}

func checksum(body string) byte {
	var x byte
	for i := 0; i < len(body); i++ {
		x ^= body[i]
	}
	return x
}

// FuzzParseNMEA: whatever a serial line delivers, the parser neither
// panics nor returns a time it was not given in range.
func FuzzParseNMEA(f *testing.F) {
	for _, s := range []string{
		sentence("GPRMC,060000.00,A,2105.1234,N,10551.5678,E,0.01,,020326,,,A"),
		sentence("GNRMC,235959.250,A,2105.1,N,10551.5,E,,,311226,,,D"),
		sentence("GPRMC,060000.00,V,,,,,,,020326,,,N"),
		sentence("GPZDA,101530.00,02,03,2026,00,00"),
		sentence("GPZDA,,,,,,"),
		sentence("GPGGA,060000.00,2105.1,N,10551.5,E,1,08,0.9,545.4,M,46.9,M,,"),
		"$GPRMC,*00", "$", "", "$GPZDA,1.,1,1,1980*", "$$$$",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		nt, err := ParseNMEA(line)
		if err != nil {
			return
		}
		if nt.Time.Year() < 1980 || nt.Time.Year() > 9999 || nt.Time.Location() != time.UTC {
			t.Fatalf("ParseNMEA(%q) = %v", line, nt.Time)
		}
		if nt.Kind != "RMC" && nt.Kind != "ZDA" {
			t.Fatalf("kind %q", nt.Kind)
		}
	})
}
