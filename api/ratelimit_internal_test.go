package api

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestBucketsTake(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rate := Rate{PerSec: 2, Burst: 3}
	tests := []struct {
		name  string
		after []time.Duration // when each call is made, from t0
		wait  []time.Duration // what each returns
	}{
		{"burst then wait", []time.Duration{0, 0, 0, 0}, []time.Duration{0, 0, 0, 500 * time.Millisecond}},
		{"refill at the rate", []time.Duration{0, 0, 0, 500 * time.Millisecond, 500 * time.Millisecond}, []time.Duration{0, 0, 0, 0, 500 * time.Millisecond}},
		{"partial refill", []time.Duration{0, 0, 0, 250 * time.Millisecond}, []time.Duration{0, 0, 0, 250 * time.Millisecond}},
		{"never above the burst", []time.Duration{0, time.Hour, time.Hour, time.Hour, time.Hour}, []time.Duration{0, 0, 0, 0, 500 * time.Millisecond}},
		{"a clock going back refills nothing", []time.Duration{time.Second, time.Second, time.Second, 0}, []time.Duration{0, 0, 0, 500 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bs := newBuckets(10)
			for i, at := range tc.after {
				if got := bs.take(classStaff, "token:a", rate, t0.Add(at)); got != tc.wait[i] {
					t.Fatalf("call %d at +%v: wait %v, want %v", i+1, at, got, tc.wait[i])
				}
			}
		})
	}
}

func TestBucketsClassesAreApart(t *testing.T) {
	t0 := time.Now()
	bs := newBuckets(10)
	one := Rate{PerSec: 1, Burst: 1}
	if bs.take(classStaff, "token:a", one, t0) != 0 || bs.take(classStaff, "token:a", one, t0) == 0 {
		t.Fatal("staff bucket of a: want one request, then a wait")
	}
	if bs.take(classCAP, "token:a", one, t0) != 0 {
		t.Fatal("the CAP bucket of the same token was used up by staff requests")
	}
	if bs.take(classStaff, "token:b", one, t0) != 0 {
		t.Fatal("token b was held back by token a")
	}
}

func TestBucketsMemoryIsBounded(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rate := Rate{PerSec: 1, Burst: 5}
	bs := newBuckets(100)

	// A flood from 200,000 addresses keeps at most max buckets.
	for i := range 200_000 {
		bs.take(classUnauthenticated, fmt.Sprintf("addr:10.%d.%d.%d", i>>16&255, i>>8&255, i&255), rate, t0)
		if i%1000 == 0 && bs.len() > 100 {
			t.Fatalf("%d buckets after %d clients, want at most 100", bs.len(), i+1)
		}
	}
	if n := bs.len(); n != 100 {
		t.Fatalf("%d buckets, want 100", n)
	}
	// The latest clients are still held back: a flood does not reset them.
	last := "addr:10.3.13.63" // client 199,999
	bs.take(classUnauthenticated, last, rate, t0)
	for range 5 {
		bs.take(classUnauthenticated, last, rate, t0)
	}
	if bs.take(classUnauthenticated, last, rate, t0) == 0 {
		t.Fatal("the newest client's bucket was lost")
	}
	// Once idle long enough to refill, buckets are dropped as others come.
	bs.take(classStaff, "token:a", rate, t0.Add(time.Hour))
	if n := bs.len(); n != 1 {
		t.Fatalf("%d buckets an hour later, want only the active one", n)
	}
}

func TestClientAddr(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"192.0.2.7:40000", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:40000", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:40000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:1", "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:1", "2001:db8:1:3::/64"},
		{"pipe", "pipe"},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.remote, ":", "_"), func(t *testing.T) {
			if got := clientAddr(tc.remote); got != tc.want {
				t.Fatalf("clientAddr(%q) = %q, want %q", tc.remote, got, tc.want)
			}
		})
	}
}

func TestLimitsValidate(t *testing.T) {
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*Limits)
		field string
	}{
		{"staff rate zero", func(l *Limits) { l.Staff.PerSec = 0 }, "staff.per_sec"},
		{"boxes burst zero", func(l *Limits) { l.Boxes.Burst = 0 }, "boxes.burst"},
		{"cap rate negative", func(l *Limits) { l.CAP.PerSec = -1 }, "cap.per_sec"},
		{"no clients", func(l *Limits) { l.MaxClients = 0 }, "max_clients"},
		{"body timeout tiny", func(l *Limits) { l.BodyTimeout = time.Millisecond }, "body_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := DefaultLimits()
			tc.edit(&l)
			err := l.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
				t.Fatalf("error %v, want one naming %s", err, tc.field)
			}
		})
	}
}
