package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/store"
)

// TestAgentBuildsAndRollout publishes this test binary as an agent build
// (an amd64 ELF program that contains its version string), serves it to a
// box with Range, and rolls it out half the boxes a step.
func TestAgentBuildsAndRollout(t *testing.T) {
	ctx := context.Background()
	e := newEnvWith(t, api.Options{BuildsDir: t.TempDir()})
	boxes := map[string]api.AddDeviceResponse{}
	for _, id := range []string{"b1", "b2", "b3", "b4"} {
		boxes[id] = e.addDevice(t, id, "thon-1")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	const version = "v9.8.7" // in the binary, as this constant
	b, err := e.client.AddBuild(ctx, version, bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	if b.SHA256 != hex.EncodeToString(sum[:]) || b.Arch != "amd64" || b.Size != int64(len(bin)) || b.Version != version {
		t.Fatalf("published build %+v", b)
	}

	t.Run("refused", func(t *testing.T) {
		absent := fmt.Sprintf("v%d.%d.%d", 3, 1, 4) // made at run time: not in the binary
		for _, tc := range []struct {
			version string
			body    []byte
			want    string
		}{
			{"latest", bin, "must look like 1.4.0"},
			{"v1.0.0", []byte("#!/bin/sh\necho v1.0.0\n"), "not a Linux program"},
			{absent, bin, "does not contain the version " + absent},
		} {
			_, err := e.client.AddBuild(ctx, tc.version, bytes.NewReader(tc.body))
			if ae := apiError(t, err, http.StatusBadRequest); !strings.Contains(ae.Message, tc.want) {
				t.Errorf("publish %s: %q, want %q", tc.version, ae.Message, tc.want)
			}
		}
	})

	t.Run("served with Range to a box", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/agent/builds/"+b.SHA256, nil)
		req.SetBasicAuth("b1", boxes["b1"].Token)
		req.Header.Set("Range", "bytes=100-199")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, bin[100:200]) {
			t.Fatalf("range: %s, %d bytes", resp.Status, len(got))
		}
		req.SetBasicAuth("b1", "wrong")
		resp2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp2.Body.Close()
		if resp2.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong box token: %s", resp2.Status)
		}
	})

	st, err := e.client.StartRollout(ctx, api.RolloutRequest{Version: version, Builds: []string{b.SHA256},
		Targets: store.Targets{Groups: []string{"thon-1"}}, Percent: 50})
	if err != nil {
		t.Fatal(err)
	}
	offered := 0
	for _, box := range st.Boxes {
		if box.Step == 1 {
			offered++
		}
	}
	if st.State != store.RolloutActive || st.Step != 1 || offered != 2 || len(st.Boxes) != 4 {
		t.Fatalf("rollout after start: %+v", st)
	}
	_, err = e.client.StartRollout(ctx, api.RolloutRequest{Version: version, Builds: []string{b.SHA256}, Targets: store.Targets{All: true}})
	apiError(t, err, http.StatusConflict)

	for _, state := range []string{store.RolloutPaused, store.RolloutActive, store.RolloutAborted} {
		st, err := e.client.SetRolloutState(ctx, state, "test")
		if err != nil || st.State != state {
			t.Fatalf("set rollout %s: %+v, %v", state, st.Rollout, err)
		}
	}
	_, err = e.client.SetRolloutState(ctx, store.RolloutPaused, "")
	apiError(t, err, http.StatusNotFound)
}
