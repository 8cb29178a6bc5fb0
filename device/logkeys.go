package device

// Log attribute keys, in one place so that logs stay greppable.
const (
	keyDevice = "device"
	keySite   = "site"
	keyBroker = "broker"
	keyTopic  = "topic"
	keyTarget = "target"
	keyItem   = "item"
	keyEvent  = "event"
	keyReason = "reason"
	keySHA    = "sha256"
	keyBytes  = "bytes"
	keyState  = "state"
	keyErr    = "err"
	keyURL    = "url"
	keyTry    = "attempt"
)
