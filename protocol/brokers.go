package protocol

import (
	"slices"
	"strings"
)

// SplitList splits a comma-separated list (of broker URLs, say), trimming
// spaces and dropping blanks.
func SplitList(s string) []string {
	var out []string
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// BrokerURLs is the order a client tries its brokers in: the URLs of
// broker (comma-separated), then more, each once, blanks dropped. The agent
// and the controller configs both take their brokers this way.
func BrokerURLs(broker string, more []string) []string {
	var out []string
	for _, u := range append(SplitList(broker), more...) {
		if u = strings.TrimSpace(u); u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}
