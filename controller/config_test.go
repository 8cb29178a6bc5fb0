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

// TestConfigBackupAndConsole: a backup on the data folder's own disk folder,
// too frequent a backup, and a tile source without {z}/{x}/{y} are refused
// with the field named.
func TestConfigBackupAndConsole(t *testing.T) {
	for field, set := range map[string]func(*Config){
		"backup.dir":    func(c *Config) { c.Data = "/var/lib/loa"; c.Backup.Dir = "/var/lib/loa/backup" },
		"backup.every":  func(c *Config) { c.Backup.Dir = "/media/usb/loa"; c.Backup.Every = time.Second },
		"console.tiles": func(c *Config) { c.Console.Tiles = "https://tile.example.org/map.png" },
	} {
		c := Defaults()
		set(&c)
		var fe *FieldError
		if err := c.Validate(); !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: Validate() = %v; want a FieldError on %s", field, err, field)
		}
	}
	c := Defaults()
	c.Data, c.Backup.Dir, c.Console.Tiles = "/var/lib/loa", "/var/lib/loa-backup", "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
	if err := c.Validate(); err != nil {
		t.Errorf("a backup beside (not inside) the data folder and a good tile source: %v", err)
	}
}
