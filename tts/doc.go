// Package tts renders text to speech on the controller, so staff can type an
// announcement instead of recording one. The speech engine is an external
// command (espeak-ng with a Vietnamese voice by default) given as an argument
// list with placeholders; the text goes to its standard input, never to a
// shell. A Renderer is safe for concurrent use: each call runs its own
// process in its own temporary folder.
package tts
