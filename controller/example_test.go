package controller_test

import (
	"testing"

	"github.com/loa-commune/loa/controller"
)

// TestExampleConfig keeps configs/loa.yaml loadable and valid.
func TestExampleConfig(t *testing.T) {
	c := controller.Defaults()
	if err := c.LoadFile("../configs/loa.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Triggers) != 1 || c.Triggers[0].Action.Tone != "flood" {
		t.Fatalf("triggers: %+v", c.Triggers)
	}
}
