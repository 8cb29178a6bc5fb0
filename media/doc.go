// Package media is the controller's content-addressed store of audio files:
// each file lives at <dir>/<sha256>, is checked to decode (and to fit the
// size and duration limits) before it is kept, and is written through a temp
// file and a rename, so a crash never leaves a half file under a real name.
//
// A *Store is safe for concurrent use: files are immutable once renamed.
package media
