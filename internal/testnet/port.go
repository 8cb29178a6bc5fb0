package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
)

// Ports are taken below the kernel's ephemeral range (32768–60999 on Linux):
// a port found with Listen(":0") and closed again can be handed by the kernel
// to any outgoing connection or other ":0" listener before the child process
// binds it, which made an e2e controller fail with "address already in use".
// Below that range only explicit binds land, and within one process the
// counter never repeats a port.
const (
	lowPort  = 20000
	highPort = 32000
)

var next atomic.Int32

func init() {
	// A random start keeps concurrent test binaries (go test runs packages
	// in parallel) in different stretches of the range.
	next.Store(int32(lowPort + rand.IntN(highPort-lowPort)))
}

// FreePort returns a loopback "host:port" nothing listens on now, outside the
// ephemeral range.
func FreePort(t testing.TB) string {
	t.Helper()
	for range highPort - lowPort {
		p := next.Add(1)
		if p >= highPort {
			next.CompareAndSwap(p, lowPort)
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		return addr
	}
	t.Fatal("no free loopback port between 20000 and 32000")
	return ""
}
