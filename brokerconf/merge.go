package brokerconf

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A province runs one broker (or cluster) for many communes: each commune's
// controller writes its site's files with `loa broker config`, and the
// broker's operator merges them. Sites stay apart because every site's
// rules name only topics under its own root, loa/<site>; what merging must
// check is that no username is in two sites (box ids and the controllers'
// broker_username must be unique across the sites of one broker), since a
// broker has one user of each name.

// MergeMosquitto joins the mosquitto files of several sites (each folder as
// `loa broker config --format mosquitto` wrote it) into one password file
// and one ACL; the loa.conf lines name them in brokerDir.
func MergeMosquitto(siteDirs []string, brokerDir string) (Files, error) {
	var f Files
	owner := map[string]string{} // username → the folder that has it
	for _, dir := range siteDirs {
		pw, err := os.ReadFile(filepath.Join(dir, PasswdFile))
		if err != nil {
			return Files{}, fmt.Errorf("site files in %s: %w", dir, err)
		}
		acl, err := os.ReadFile(filepath.Join(dir, ACLFile))
		if err != nil {
			return Files{}, fmt.Errorf("site files in %s: %w", dir, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(pw))
		for sc.Scan() {
			user, _, ok := strings.Cut(sc.Text(), ":")
			if !ok || user == "" {
				continue
			}
			if err := claim(owner, user, dir); err != nil {
				return Files{}, err
			}
			if user != controllerOf(acl) {
				f.Boxes = append(f.Boxes, user)
			}
		}
		f.Passwd = append(f.Passwd, pw...)
		f.ACL = append(append(f.ACL, acl...), '\n')
	}
	f.Conf = []byte(confLines(filepath.Join(brokerDir, PasswdFile), filepath.Join(brokerDir, ACLFile)))
	return f, nil
}

// controllerOf is the first user of an ACL Loa wrote: the controller's.
func controllerOf(acl []byte) string {
	for _, line := range strings.Split(string(acl), "\n") {
		if u, ok := strings.CutPrefix(line, "user "); ok {
			return u
		}
	}
	return ""
}

// NATSAccounts are the accounts of several sites for one NATS cluster:
// each site's account file, renamed after its account, and the one
// accounts block that includes them all.
type NATSAccounts struct {
	Files map[string][]byte // file name → an account's body
	Conf  []byte            // loa-nats.conf: accounts { ... }
	Boxes []string
}

var (
	natsAccountLine = regexp.MustCompile(`^\s*("[^"]+")\s*:\s*\{\s*include`)
	natsUserLine    = regexp.MustCompile(`^\s*user:\s*("[^"]+")\s*$`)
)

// MergeNATS joins the NATS files of several sites (each folder as `loa
// broker config --format nats` wrote it).
func MergeNATS(siteDirs []string) (NATSAccounts, error) {
	out := NATSAccounts{Files: map[string][]byte{}}
	owner := map[string]string{}
	var conf strings.Builder
	conf.WriteString("# Loa: the accounts of every site on this cluster, merged by `loa broker merge --format nats`.\n")
	conf.WriteString("# Include this file in every node's nats-server.conf, with the account files next to it.\n")
	conf.WriteString("accounts {\n")
	for _, dir := range siteDirs {
		c, err := os.ReadFile(filepath.Join(dir, NATSConfFile))
		if err != nil {
			return NATSAccounts{}, fmt.Errorf("site files in %s: %w", dir, err)
		}
		account := ""
		for _, line := range strings.Split(string(c), "\n") {
			if m := natsAccountLine.FindStringSubmatch(line); m != nil {
				account, _ = strconv.Unquote(m[1])
			}
		}
		if account == "" {
			return NATSAccounts{}, fmt.Errorf("%s names no account: write it again with `loa broker config --format nats`", filepath.Join(dir, NATSConfFile))
		}
		body, err := os.ReadFile(filepath.Join(dir, NATSAccountFile))
		if err != nil {
			return NATSAccounts{}, fmt.Errorf("site files in %s: %w", dir, err)
		}
		name := account + ".conf"
		if _, dup := out.Files[name]; dup {
			return NATSAccounts{}, fmt.Errorf("site account %s is in two folders: each site once", account)
		}
		first := true // the controller's user comes first
		for _, line := range strings.Split(string(body), "\n") {
			if m := natsUserLine.FindStringSubmatch(line); m != nil {
				user, _ := strconv.Unquote(m[1])
				if err := claim(owner, user, dir); err != nil {
					return NATSAccounts{}, err
				}
				if !first {
					out.Boxes = append(out.Boxes, user)
				}
				first = false
			}
		}
		out.Files[name] = body
		fmt.Fprintf(&conf, "  %s: { include %s }\n", strconv.Quote(account), strconv.Quote(name))
	}
	conf.WriteString("}\n")
	out.Conf = []byte(conf.String())
	slices.Sort(out.Boxes)
	return out, nil
}

// claim records that dir has user, refusing a user two sites have.
func claim(owner map[string]string, user, dir string) error {
	if other, ok := owner[user]; ok {
		return fmt.Errorf("user %q is in the files of %s and of %s: a broker has one user of each name, so give every box an id unique across the sites (e.g. the commune's code first) and every controller its own broker_username", user, other, dir)
	}
	owner[user] = dir
	return nil
}

// Write puts the merged accounts and loa-nats.conf into dir, each only if
// it changed; it reports whether any did.
func (a NATSAccounts) Write(dir string) (changed bool, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return false, fmt.Errorf("make folder for broker files: %w", err)
	}
	names := make([]string, 0, len(a.Files))
	for n := range a.Files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c, err := writeIfChanged(filepath.Join(dir, n), a.Files[n], 0o640)
		if err != nil {
			return changed, err
		}
		changed = changed || c
	}
	c, err := writeIfChanged(filepath.Join(dir, NATSConfFile), a.Conf, 0o644)
	return changed || c, err
}
