package protocol

import (
	"errors"
	"fmt"
)

// Why is one part of the reason a box gives for an answer, as a code and
// its arguments, so the controller can say it in the reader's language
// (messages.Reason). Event.Reason keeps the same words in English for
// logs and for controllers that know no codes.
type Why struct {
	Code string   `json:"code"`
	Args []string `json:"args,omitempty"`
}

// The codes of Why and their arguments. A newer box may send codes an
// older controller does not know: it then shows the box's English.
const (
	// While playing.
	WhyResuming         = "resuming"          // seconds into the item
	WhyRestarting       = "restarting"        // after a preemption
	WhyToneFirst        = "tone-first"        // media not fetched: the alert tone starts
	WhyJoining          = "joining"           // seconds into the live session
	WhyRejoinPreempted  = "rejoin-preempted"  // seconds into the live session
	WhyRejoinRestart    = "rejoin-restart"    // seconds into the live session
	WhyStreamMissed     = "stream-missed"     // seconds missed, seconds of the session
	WhyStreamOff        = "stream-off"        // seconds not on the output
	WhySessionPreempted = "session-preempted" // the session ended while preempted
	WhySessionRestart   = "session-restart"   // the session ended before the box rejoined
	// Why an item did not play, or not whole.
	WhyQuietHours       = "quiet-hours"
	WhyReplacedBy       = "replaced-by"  // the item that replaced it
	WhyPreemptedBy      = "preempted-by" // the item that preempted it
	WhyDropped          = "dropped"      // on_preempt drop
	WhyPreemptedExpired = "preempted-expired"
	WhyRestartExpired   = "restart-expired"
	WhyWindowClosed     = "window-closed"
	WhyMediaNotReady    = "media-not-ready" // followed by the media's state
	WhyToneOnly         = "tone-only"       // times the tone played; then the media's state
	WhyMessageMissing   = "message-missing" // repeats without the message, repeats
	WhyExpiredBefore    = "expired-before-plan"
	WhyRemoved          = "removed"
	WhyMediaUnplayable  = "media-unplayable" // the decoder's error
	WhyError            = "error"            // an error in the box's words (sound card, decoder)
	// The media's state, after WhyMediaNotReady or WhyToneOnly.
	WhyDownloading      = "downloading"
	WhyDownloadNotBegun = "download-not-begun"
	WhyDownloadFailed   = "download-failed"   // the error
	WhyDownloadRetrying = "download-retrying" // the error
	// Written by the controller into the report, not sent by boxes.
	WhyNoAnswer            = "no-answer"
	WhyCancelledUnanswered = "cancelled-unanswered"
)

// Bounds of Event.Why, so a box cannot make the controller store much.
const (
	MaxWhy     = 8
	MaxWhyArgs = 4
	MaxWhyArg  = 1024
)

// validWhy checks the codes' form and the sizes. Unknown codes are
// accepted: a newer box may know more.
func validWhy(why []Why) error {
	if len(why) > MaxWhy {
		return fmt.Errorf("%d reason parts, more than %d", len(why), MaxWhy)
	}
	for _, w := range why {
		if err := validCode("reason", w.Code); err != nil {
			return err
		}
		if len(w.Args) > MaxWhyArgs {
			return fmt.Errorf("reason %s: %d arguments, more than %d", w.Code, len(w.Args), MaxWhyArgs)
		}
		for _, a := range w.Args {
			if len(a) > MaxWhyArg {
				return errors.New("reason " + w.Code + ": an argument is too long")
			}
		}
	}
	return nil
}
