// Package otosink plays PCM on the sound card through ALSA with
// github.com/ebitengine/oto/v3. It needs cgo and the ALSA headers
// (libasound2-dev) to build; built without cgo, New returns an error, so
// that CGO_ENABLED=0 builds of the whole module still work.
//
// oto allows one context per process, so the first New opens the card at
// its format and every later New shares it (or fails with the same error,
// or if asked for another format). Before oto is started ALSA's default
// device is probed (opened and closed): while it does not open, New fails
// with ALSA's reason (ErrNoCard) and may be called again, and oto is never
// left to fall back to another card. NewLazy makes a Sink that opens the
// card on first use and whose Ready says why it cannot (loa-agent reports
// it and plays once the card answers). A card that fails after it opened
// stays failed for the process. Only ALSA's default device is used; the
// output is redirected with ALSA's configuration (ALSA_CONFIG_PATH pointing
// at a file that defines pcm.!default, as loa-agent --output alsa:DEVICE
// writes).
//
// A Sink is safe for concurrent use: concurrent Plays are mixed.
package otosink
