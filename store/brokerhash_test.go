package store

import (
	"context"
	"errors"
	"maps"
	"testing"
)

func TestBrokerHashes(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "box-1", "thon-1")
	addDevice(t, s, "box-2")
	addDevice(t, s, "old-box")
	for id, h := range map[string]string{"box-1": "$7$101$a$b", "box-2": "$7$101$c$d"} {
		if err := s.SetBrokerHash(ctx, id, h); err != nil {
			t.Fatalf("SetBrokerHash(%s): %v", id, err)
		}
	}
	if err := s.SetBrokerHash(ctx, "box-2", "$7$101$e$f"); err != nil {
		t.Fatalf("SetBrokerHash again: %v", err)
	}
	if err := s.SetBrokerHash(ctx, "nobody", "$7$101$a$b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetBrokerHash of an unknown device = %v, want ErrNotFound", err)
	}
	got, err := s.BrokerHashes(ctx)
	if want := map[string]string{"box-1": "$7$101$a$b", "box-2": "$7$101$e$f"}; err != nil || !maps.Equal(got, want) {
		t.Fatalf("BrokerHashes = %v, %v; want %v (old-box has none)", got, err, want)
	}
	if err := s.RemoveDevice(ctx, "box-1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.BrokerHashes(ctx); len(got) != 1 || got["box-2"] == "" {
		t.Fatalf("after removing box-1, BrokerHashes = %v", got)
	}
}
