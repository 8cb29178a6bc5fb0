// Package oggtest builds Ogg Opus streams byte by byte for the tests of
// package audio and audio/opus: pages with any flags, granule positions and
// lacing, so that the reader's corner cases can be made on purpose. Its
// CRC is computed bit by bit, independently of the table-driven one in
// package audio.
//
// It owns no production code: only tests import it.
package oggtest
