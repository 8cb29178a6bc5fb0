package controller

import (
	"errors"
	"testing"
	"time"
)

func TestConfigAnswerSpread(t *testing.T) {
	c := Defaults()
	if err := c.Validate(); err != nil || c.AnswerSpread != time.Second {
		t.Fatalf("defaults: spread %v, %v", c.AnswerSpread, err)
	}
	for _, spread := range []time.Duration{-time.Millisecond, 61 * time.Second} {
		c := Defaults()
		c.AnswerSpread = spread
		var fe *FieldError
		if err := c.Validate(); !errors.As(err, &fe) || fe.Field != "answer_spread" {
			t.Errorf("answer_spread %v: %v, want an error on answer_spread", spread, err)
		}
	}
}
