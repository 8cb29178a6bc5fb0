package testnet

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePortIsBindableAndNotRepeated(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		addr := FreePort(t)
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		_, port, _ := net.SplitHostPort(addr)
		if p, _ := strconv.Atoi(port); p < lowPort || p >= highPort {
			t.Fatalf("%s is outside %d–%d", addr, lowPort, highPort)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("FreePort gave %s but it cannot be bound: %v", addr, err)
		}
		l.Close()
	}
}
