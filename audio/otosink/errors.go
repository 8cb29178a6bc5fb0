package otosink

import "errors"

// ErrNoCgo is returned by New (and Ready, Play) in a build without cgo.
var ErrNoCgo = errors.New("otosink: built without cgo: no sound card output")

// ErrNoCard wraps what ALSA said when the default device did not open.
var ErrNoCard = errors.New("ALSA cannot open the device")
