// Package streamtest serves radio streams for tests without internet: an
// Icecast-like HTTP server that broadcasts a programme at its own pace, and
// can die and come back on the same address.
package streamtest
