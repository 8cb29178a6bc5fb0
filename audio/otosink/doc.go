// Package otosink plays PCM on the sound card through ALSA with
// github.com/ebitengine/oto/v3. It needs cgo and the ALSA headers
// (libasound2-dev) to build; built without cgo, New returns an error, so
// that CGO_ENABLED=0 builds of the whole module still work.
//
// oto allows one context per process, so the first New opens the card at
// its format and every later New shares it (or fails with the same error,
// or if asked for another format). Only ALSA's default device is used for
// now; the output can be redirected with ALSA's configuration (for example
// ALSA_CONFIG_PATH pointing at a file that defines pcm.!default), read when
// the process starts. Selecting "alsa:DEVICE" is left for a later change.
//
// A Sink is safe for concurrent use: concurrent Plays are mixed.
package otosink
