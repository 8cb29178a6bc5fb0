// Package media is the controller's content-addressed store of audio files.
// Each upload is kept as it came, at <dir>/<sha256> (the media's id, for the
// record), beside its rendition: the file boxes download, made once at
// upload by a Renderer (ingest.Pipeline: loudness-normalised Ogg Opus) and
// kept under its own hash. Files are written through a temp file and a
// rename, so a crash never leaves a half file under a real name, and an
// upload that fails to render leaves nothing.
//
// A *Store is safe for concurrent use: files are immutable once renamed.
package media
