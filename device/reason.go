package device

import (
	"slices"

	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
)

// reason is why an item got an answer, as codes the controller says in the
// reader's language (protocol.Why); its English is the answer's Reason.
type reason []protocol.Why

// because is a reason of one part.
func because(code string, args ...string) reason {
	return reason{{Code: code, Args: args}}
}

// and is r followed by more.
func (r reason) and(more reason) reason { return append(slices.Clip(r), more...) }

// text is the reason in English, for the answer's Reason and the log.
func (r reason) text() string { return messages.Reason("en", r, "") }
