package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// NATSConnections counts the client connections of a NATS cluster (MQTT
// clients included) from its nodes' monitoring endpoints
// (http://HOST:8222): the sum of /varz "connections".
func NATSConnections(monitors []string) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		var total int64
		for _, m := range monitors {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(m, "/")+"/varz", nil)
			if err != nil {
				return 0, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, fmt.Errorf("NATS monitor %s: %w", m, err)
			}
			var v struct {
				Connections int64 `json:"connections"`
			}
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			if err != nil {
				return 0, fmt.Errorf("NATS monitor %s: %w", m, err)
			}
			total += v.Connections
		}
		return total, nil
	}
}

// SysConnections reads a mosquitto broker's count of connected clients
// ($SYS/broker/clients/connected, retained), as the floor's user.
func SysConnections(o FloorOptions) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		c, err := dial(o.Brokers, o, "sys-reader")
		if err != nil {
			return 0, err
		}
		defer c.Disconnect(50)
		// mosquitto publishes the count every sys_interval when it
		// changed, so this reader's own connection brings a fresh one
		// (counting it); with no update, the retained value is current.
		got, retained := make(chan int64, 1), make(chan int64, 1)
		tok := c.Subscribe("$SYS/broker/clients/connected", 0, func(_ paho.Client, m paho.Message) {
			n, err := strconv.ParseInt(strings.TrimSpace(string(m.Payload())), 10, 64)
			if err != nil {
				return
			}
			ch := got
			if m.Retained() {
				ch = retained
			}
			select {
			case ch <- n:
			default:
			}
		})
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return 0, fmt.Errorf("subscribe to $SYS: %v", tok.Error())
		}
		select {
		case n := <-got:
			return n - 1, nil // without this reader
		case <-time.After(15 * time.Second):
			select {
			case n := <-retained:
				return n, nil
			default:
				return 0, fmt.Errorf("no $SYS/broker/clients/connected in 15 s (set sys_interval to 10 or less, and let this user read $SYS/#)")
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
