package mochistop

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
)

// connectPacket is an MQTT 3.1.1 CONNECT with a clean session.
func connectPacket(id string) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}
	body = append(body, id...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// connect opens an MQTT session on addr and waits for its CONNACK.
func connect(addr, id string, wait time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(connectPacket(id)); err != nil {
		c.Close()
		return nil, err
	}
	ack := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(c, ack); err != nil {
		c.Close()
		return nil, err
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("refused: % x", ack)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

// TestCloseWhileClientsComeAndGo stops a broker while clients connect and
// leave, the case that can deadlock mochi's own Close (rarely: the window is
// two lock calls wide, and CI hit it once in a few hundred runs). Every
// client that was connected must be disconnected, and Close must return.
func TestCloseWhileClientsComeAndGo(t *testing.T) {
	for round := range 20 {
		srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
		if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
			t.Fatal(err)
		}
		ln := NewListener("tcp", "127.0.0.1:0", nil)
		if err := srv.AddListener(ln); err != nil {
			t.Fatal(err)
		}
		if err := srv.Serve(); err != nil {
			t.Fatal(err)
		}
		addr := ln.Address()

		var held []net.Conn
		for i := range 50 {
			c, err := connect(addr, "held-"+strconv.Itoa(i), 5*time.Second)
			if err != nil {
				t.Fatalf("round %d: connect: %v", round, err)
			}
			held = append(held, c)
		}
		stop := make(chan struct{})
		var churn sync.WaitGroup
		var sessions atomic.Int64
		for g := range 8 {
			churn.Add(1)
			go func() { // ends when stop closes or the listener is gone
				defer churn.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					c, err := connect(addr, "churn-"+strconv.Itoa(g)+"-"+strconv.Itoa(i), 200*time.Millisecond)
					if err != nil {
						continue
					}
					sessions.Add(1)
					c.Close()
				}
			}()
		}
		for sessions.Load() < 100 {
			time.Sleep(time.Millisecond)
		}
		done := make(chan error, 1)
		go func() { done <- Close(srv) }()

		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: Close: %v", round, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Close did not return with clients coming and going", round)
		}
		close(stop)
		churn.Wait()
		for _, c := range held {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 16)
			for {
				_, err := c.Read(buf)
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("round %d: a client was still connected after Close", round)
				}
				if err != nil {
					break // closed by the broker
				}
			}
			if err := c.SetReadDeadline(time.Time{}); err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
	}
}
