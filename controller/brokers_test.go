package controller_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/loa-commune/loa/controller"
)

// TestValidateBrokerList: the external broker may be the nodes of a
// cluster, as a comma-separated broker: (or --broker, LOA_BROKER) and a
// brokers: list; every URL is checked and named when wrong.
func TestValidateBrokerList(t *testing.T) {
	tests := []struct {
		name    string
		broker  string
		brokers []string
		field   string // "" means valid
		want    string // BrokerURLs after Validate, space-separated
	}{
		{"comma list", "tcp://a:1883, tcp://b:1883", nil, "", "tcp://a:1883 tcp://b:1883"},
		{"brokers only", "", []string{"tcp://a:1883", "ssl://b:8883"}, "", "tcp://a:1883 ssl://b:8883"},
		{"both, each once", "tcp://a:1883", []string{"tcp://b:1883", "tcp://a:1883"}, "", "tcp://a:1883 tcp://b:1883"},
		{"bad URL in the list", "tcp://a:1883,b:1883", nil, "broker", ""},
		{"bad URL in brokers", "tcp://a:1883", []string{"http://b:1883"}, "brokers", ""},
		{"empty URL in brokers", "", []string{""}, "brokers", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := controller.Defaults()
			c.Broker, c.Brokers = tc.broker, tc.brokers
			err := c.Validate()
			if tc.field != "" {
				var fe *controller.FieldError
				if !errors.As(err, &fe) || fe.Field != tc.field {
					t.Fatalf("Validate = %v, want a FieldError for %s", err, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(c.BrokerURLs(), " "); got != tc.want {
				t.Fatalf("BrokerURLs = %q, want %q", got, tc.want)
			}
			// The controller's own client uses Broker: the first URL.
			if first, _, _ := strings.Cut(tc.want, " "); c.Broker != first {
				t.Fatalf("Broker = %q, want %q", c.Broker, first)
			}
			if err := c.Validate(); err != nil || strings.Join(c.BrokerURLs(), " ") != tc.want {
				t.Fatalf("Validate again: %v, BrokerURLs %v", err, c.BrokerURLs())
			}
		})
	}
}
