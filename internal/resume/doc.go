// Package resume downloads a file of known size over HTTP into a partial
// file on disk, and resumes it with a Range request after a cut: a box on a
// flaky 3G link gets its media and its agent builds a piece at a time.
package resume
