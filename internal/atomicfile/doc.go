// Package atomicfile replaces small files (state, keys, certificates,
// tokens) so that a crash or power cut leaves the old file or the new one,
// never half of one.
package atomicfile
