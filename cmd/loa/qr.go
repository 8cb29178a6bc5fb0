package main

import (
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// qrText draws text as a QR code in a terminal, two modules a character
// (upper and lower half blocks), light modules drawn as blocks for the
// usual light-on-dark terminal, with a quiet zone, so a
// phone can read the enrolment command off the office PC's screen.
func qrText(text string) (string, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", err
	}
	bits := q.Bitmap() // includes the quiet zone; true is dark
	var b strings.Builder
	for y := 0; y < len(bits); y += 2 {
		for x := range bits[y] {
			top := bits[y][x]
			bottom := y+1 < len(bits) && bits[y+1][x]
			switch {
			case top && bottom:
				b.WriteRune(' ')
			case top:
				b.WriteRune('▄')
			case bottom:
				b.WriteRune('▀')
			default:
				b.WriteRune('█')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}
