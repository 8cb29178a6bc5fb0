package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/brokerconf"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

// writeNATSConfig writes the site's NATS account from the controller's
// database, after storing a NATS (bcrypt) hash for each box whose config
// was given. Warnings go to warn.
func writeNATSConfig(ctx context.Context, req brokerRequest, warn io.Writer) (brokerResult, error) {
	out, user, err := req.begin()
	if err != nil {
		return brokerResult{}, err
	}
	prev, err := os.ReadFile(filepath.Join(out, brokerconf.NATSAccountFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return brokerResult{}, fmt.Errorf("read the old account file: %w", err)
	}
	ctrlHash, err := brokerconf.NATSHashFor(prev, user, req.password)
	if err != nil {
		return brokerResult{}, fmt.Errorf("controller broker password: %w", err)
	}
	db := filepath.Join(req.data, "loa.db")
	var devices []brokerconf.Device
	if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
		if len(req.boxConfigs) > 0 {
			return brokerResult{}, fmt.Errorf("no controller database at %s: point --data at the controller's data folder", db)
		}
		if n := len(brokerconf.ParseNATSUsers(prev)) - 1; n > 0 {
			return brokerResult{}, errors.New(messages.T(messages.BrokerWrongData, db, filepath.Join(out, brokerconf.NATSAccountFile), n))
		}
		fmt.Fprintln(warn, messages.T(messages.BrokerNoDatabase, db))
	} else if devices, err = natsDevices(ctx, db, req.boxConfigs); err != nil {
		return brokerResult{}, err
	}
	files, err := brokerconf.NATS(brokerconf.Options{
		Site: req.site, ControllerUser: user, ControllerHash: ctrlHash, Devices: devices, AnyGroup: req.anyGroup,
	})
	if err != nil {
		return brokerResult{}, fmt.Errorf("broker files: %w", err)
	}
	if len(files.Missing) > 0 {
		fmt.Fprintf(warn, "warning: left out %s: no NATS password hash is stored for them, so they cannot connect to NATS; "+
			"run this again with --box-config FILE for each (the config `loa device add ID --write-config FILE` wrote)\n",
			strings.Join(files.Missing, ", "))
	}
	changed, err := files.Write(out)
	if err != nil {
		return brokerResult{}, err
	}
	return brokerResult{
		Dir: out, Files: []string{brokerconf.NATSAccountFile, brokerconf.NATSConfFile}, Changed: changed,
		ControllerUser: user, Boxes: nonNil(files.Boxes), Missing: nonNil(files.Missing), Conf: string(files.Conf),
		Format: "nats",
	}, nil
}

// natsDevices stores a NATS hash of the token in each box config given
// (after checking it is the box's token), then lists the registered boxes
// with their groups and NATS hashes.
func natsDevices(ctx context.Context, db string, boxConfigs []string) ([]brokerconf.Device, error) {
	st, err := store.Open(ctx, db)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	hashes, err := st.NATSHashes(ctx)
	if err != nil {
		return nil, err
	}
	for _, path := range boxConfigs {
		var box struct {
			ID    string `yaml:"id"`
			Token string `yaml:"token"`
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--box-config: %w", err)
		}
		if err := yaml.Unmarshal(b, &box); err != nil || box.ID == "" || box.Token == "" {
			return nil, fmt.Errorf("--box-config %s: not a box config with id and token (`loa device add ID --write-config FILE` writes one)", path)
		}
		stored, err := st.DeviceTokenHash(ctx, box.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("--box-config %s: box %s is not registered in %s", path, box.ID, db)
		} else if err != nil {
			return nil, err
		}
		if !auth.Check(box.Token, stored) {
			return nil, fmt.Errorf("--box-config %s: the token is not box %s's (an old config? `loa device add` gave it a new one)", path, box.ID)
		}
		if h, ok := hashes[box.ID]; ok && brokerconf.VerifyNATS(box.Token, h) {
			continue // unchanged, so the files do not change
		}
		h, err := brokerconf.NATSHash(box.Token)
		if err != nil {
			return nil, err
		}
		if err := st.SetNATSHash(ctx, box.ID, h); err != nil {
			return nil, err
		}
		hashes[box.ID] = h
	}
	ds, err := st.Devices(ctx)
	if err != nil {
		return nil, err
	}
	var devices []brokerconf.Device
	for _, d := range ds {
		devices = append(devices, brokerconf.Device{ID: d.ID, Groups: d.Groups, NATSHash: hashes[d.ID]})
	}
	return devices, nil
}

func (r brokerResult) printNATS(w io.Writer) error {
	if r.Changed {
		fmt.Fprintf(w, "Wrote %s in %s: NATS account for the controller (%s) and %d boxes.\n", strings.Join(r.Files, ", "), r.Dir, r.ControllerUser, len(r.Boxes))
	} else {
		fmt.Fprintf(w, "Nothing changed in %s (the controller and %d boxes): no reload needed.\n", r.Dir, len(r.Boxes))
	}
	fmt.Fprintf(w, "Copy both files next to every node's nats-server.conf and add to it:\n\n  include %s\n\n", brokerconf.NATSConfFile)
	_, err := fmt.Fprintln(w, "Then reload each node (nats-server --signal reload=PID, or kill -HUP PID). Do this again after\n"+
		"adding or removing boxes or changing groups.")
	return err
}
