package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/pki"
)

var now = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func opts(dir string) pki.Options {
	return pki.Options{Dir: dir, Now: func() time.Time { return now }}
}

func readCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCerts(b)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ca, srv, err := pki.Init(opts(dir), "Xã Sơn Thủy CA", []string{"loa.xa-son-thuy.vn", "192.168.1.10", "LOA.xa-son-thuy.vn"})
	if err != nil {
		t.Fatal(err)
	}
	caCert := readCerts(t, filepath.Join(dir, pki.CACertFile))[0]
	chain := readCerts(t, filepath.Join(dir, pki.ServerCertFile))
	if len(chain) != 2 || !chain[1].Equal(caCert) {
		t.Fatalf("server.crt holds %d certificates, want the server's then the CA's", len(chain))
	}
	leaf := chain[0]
	if !ca.Cert.Equal(caCert) || !srv.Cert.Equal(leaf) {
		t.Fatal("returned certificates are not the written ones")
	}

	t.Run("CA", func(t *testing.T) {
		if !caCert.IsCA || caCert.Subject.CommonName != "Xã Sơn Thủy CA" || caCert.MaxPathLen != 0 || !caCert.MaxPathLenZero {
			t.Fatalf("CA: IsCA %v, CN %q, MaxPathLen %d", caCert.IsCA, caCert.Subject.CommonName, caCert.MaxPathLen)
		}
		if _, ok := caCert.PublicKey.(*ecdsa.PublicKey); !ok || caCert.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
			t.Fatalf("CA key is %T, want ECDSA P-256", caCert.PublicKey)
		}
		if !caCert.NotAfter.Equal(now.AddDate(10, 0, 0)) {
			t.Fatalf("CA valid until %v, want 10 years from %v", caCert.NotAfter, now)
		}
	})

	t.Run("SANs", func(t *testing.T) {
		if want := []string{"loa.xa-son-thuy.vn", "localhost"}; !slices.Equal(leaf.DNSNames, want) {
			t.Fatalf("DNS names %v, want %v", leaf.DNSNames, want)
		}
		var ips []string
		for _, ip := range leaf.IPAddresses {
			ips = append(ips, ip.String())
		}
		if want := []string{"192.168.1.10", "127.0.0.1", "::1"}; !slices.Equal(ips, want) {
			t.Fatalf("IP addresses %v, want %v", ips, want)
		}
		if leaf.IsCA || !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
			t.Fatalf("server certificate: IsCA %v, ExtKeyUsage %v", leaf.IsCA, leaf.ExtKeyUsage)
		}
	})

	t.Run("lifetimes", func(t *testing.T) {
		if !leaf.NotAfter.Equal(now.AddDate(2, 0, 0)) {
			t.Fatalf("server valid until %v, want 2 years from %v", leaf.NotAfter, now)
		}
		for _, c := range []*x509.Certificate{caCert, leaf} {
			if c.NotBefore.After(pki.NotBefore) {
				t.Fatalf("%s valid from %v, after %v: a box without the time would refuse it", c.Subject.CommonName, c.NotBefore, pki.NotBefore)
			}
		}
	})

	t.Run("chain verifies", func(t *testing.T) {
		for _, host := range []string{"loa.xa-son-thuy.vn", "192.168.1.10", "127.0.0.1", "localhost", "::1"} {
			for _, at := range []time.Time{now, pki.NotBefore, now.AddDate(2, 0, -1)} {
				if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool(caCert), CurrentTime: at}); err != nil {
					t.Errorf("verify for %s at %v: %v", host, at, err)
				}
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: pool(caCert), CurrentTime: now}); err == nil {
			t.Error("the certificate verifies for a name it does not have")
		}
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pool(caCert), CurrentTime: now.AddDate(2, 0, 1)}); err == nil {
			t.Error("the certificate verifies after it expired")
		}
	})

	t.Run("key files", func(t *testing.T) {
		for name, want := range map[string]os.FileMode{
			pki.CAKeyFile: 0o600, pki.ServerKeyFile: 0o600, pki.CACertFile: 0o644, pki.ServerCertFile: 0o644,
		} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: %v, %v; want mode %v", name, fi.Mode(), err, want)
			}
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("folder: %v, %v; want mode 0700", fi.Mode(), err)
		}
		if _, err := tls.LoadX509KeyPair(srv.CertFile, srv.KeyFile); err != nil {
			t.Errorf("server key pair: %v", err)
		}
		left, _ := filepath.Glob(filepath.Join(dir, ".*tmp"))
		if len(left) > 0 {
			t.Errorf("temporary files left: %v", left)
		}
	})

	t.Run("refuses to overwrite", func(t *testing.T) {
		before, _ := os.ReadFile(filepath.Join(dir, pki.CAKeyFile))
		_, _, err := pki.Init(opts(dir), "", []string{"other"})
		if !errors.Is(err, pki.ErrExists) || !strings.Contains(err.Error(), pki.CAKeyFile) || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("Init again = %v, want ErrExists naming ca.key and --force", err)
		}
		if _, err := pki.IssueServer(opts(dir), []string{"other"}); !errors.Is(err, pki.ErrExists) {
			t.Fatalf("IssueServer over server.key = %v, want ErrExists", err)
		}
		after, _ := os.ReadFile(filepath.Join(dir, pki.CAKeyFile))
		if string(before) != string(after) {
			t.Fatal("the CA key changed")
		}
		o := opts(dir)
		o.Force = true
		if _, _, err := pki.Init(o, "", []string{"other"}); err != nil {
			t.Fatalf("Init --force: %v", err)
		}
		if after, _ := os.ReadFile(filepath.Join(dir, pki.CAKeyFile)); string(before) == string(after) {
			t.Fatal("Init --force kept the old CA key")
		}
	})
}

func TestIssueServerKeepsCA(t *testing.T) {
	dir := t.TempDir()
	ca, first, err := pki.Init(opts(dir), "", []string{"loa.local"})
	if err != nil {
		t.Fatal(err)
	}
	o := opts(dir)
	o.Force = true
	second, err := pki.IssueServer(o, []string{"10.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	if second.Cert.Equal(first.Cert) || !slices.ContainsFunc(second.Cert.IPAddresses, func(ip net.IP) bool { return ip.String() == "10.0.0.2" }) {
		t.Fatalf("new server certificate has %v", second.Cert.IPAddresses)
	}
	if _, err := second.Cert.Verify(x509.VerifyOptions{DNSName: "10.0.0.2", Roots: pool(ca.Cert), CurrentTime: now}); err != nil {
		t.Fatalf("the new certificate does not verify with the old CA: %v", err)
	}
}

func TestIssueBox(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.IssueBox(opts(dir), "thon-1"); !errors.Is(err, pki.ErrNoCA) || !strings.Contains(err.Error(), "loa pki init") {
		t.Fatalf("IssueBox without a CA = %v, want ErrNoCA saying what to run", err)
	}
	ca, _, err := pki.Init(opts(dir), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cn := ca.Cert.Subject.CommonName; !strings.HasPrefix(cn, "Loa commune CA 2026-03-01 ") {
		t.Fatalf("default CA name %q", cn)
	}
	box, err := pki.IssueBox(opts(dir), "thon-1")
	if err != nil {
		t.Fatal(err)
	}
	if box.CertFile != filepath.Join(dir, "box-thon-1.crt") || box.Cert.Subject.CommonName != "thon-1" {
		t.Fatalf("box certificate %s for %q", box.CertFile, box.Cert.Subject.CommonName)
	}
	if !box.Cert.NotAfter.Equal(now.AddDate(5, 0, 0)) {
		t.Fatalf("box certificate valid until %v, want 5 years", box.Cert.NotAfter)
	}
	if fi, err := os.Stat(box.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("box key: %v, %v", fi.Mode(), err)
	}
	if _, err := box.Cert.Verify(x509.VerifyOptions{Roots: pool(ca.Cert), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("box certificate does not verify as a client: %v", err)
	}
	if _, err := box.Cert.Verify(x509.VerifyOptions{Roots: pool(ca.Cert), CurrentTime: now}); err == nil {
		t.Fatal("a box certificate verifies as a server's")
	}
	if _, err := pki.IssueBox(opts(dir), "thon-1"); !errors.Is(err, pki.ErrExists) {
		t.Fatalf("IssueBox again = %v, want ErrExists", err)
	}
	if _, err := pki.IssueBox(opts(dir), "../etc"); err == nil {
		t.Fatal("a box id with a slash was accepted")
	}
}

func TestBadHosts(t *testing.T) {
	for _, h := range []string{"", "https://loa.vn", "loa.vn:8080", "two words", ".loa.vn"} {
		t.Run(h, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := pki.Init(opts(dir), "", []string{h}); err == nil || !strings.Contains(err.Error(), "--host") {
				t.Fatalf("Init with host %q = %v, want an error", h, err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("wrote %v", entries)
			}
		})
	}
}

// handshake runs a TLS handshake between the two configurations over
// loopback TCP and returns the client's and the server's errors.
func handshake(t *testing.T, client, server *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer s.Close()
		s.SetDeadline(time.Now().Add(10 * time.Second))
		ss := tls.Server(s, server)
		err = ss.Handshake()
		if err == nil { // TLS 1.3: the client certificate is checked after the client is done
			_, err = io.ReadFull(ss, make([]byte, 1))
		}
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	cc := tls.Client(c, client)
	clientErr = cc.Handshake()
	if clientErr == nil {
		_, clientErr = cc.Write([]byte{1})
	}
	serverErr = <-done
	return clientErr, serverErr
}

func TestPinnedAndEphemeralClient(t *testing.T) {
	dir := t.TempDir()
	ca, srv, err := pki.Init(opts(dir), "", []string{"loa.local"})
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := tls.LoadX509KeyPair(srv.CertFile, srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	box, err := pki.IssueBox(opts(dir), "box-1")
	if err != nil {
		t.Fatal(err)
	}
	boxCert, err := tls.LoadX509KeyPair(box.CertFile, box.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	mine, mineX509, err := pki.EphemeralClient("loa-controller")
	if err != nil {
		t.Fatal(err)
	}
	server := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: pool(ca.Cert, mineX509), MinVersion: pki.MinVersion}

	if cerr, serr := handshake(t, pki.Pinned(srv.Cert, mine), server); cerr != nil || serr != nil {
		t.Fatalf("pinned client with the ephemeral certificate: client %v, server %v", cerr, serr)
	}
	if cerr, serr := handshake(t, &tls.Config{RootCAs: pool(ca.Cert), ServerName: "loa.local", Certificates: []tls.Certificate{boxCert}}, server); cerr != nil || serr != nil {
		t.Fatalf("box with its certificate: client %v, server %v", cerr, serr)
	}
	if _, serr := handshake(t, &tls.Config{RootCAs: pool(ca.Cert), ServerName: "loa.local"}, server); serr == nil {
		t.Fatal("a client without a certificate was let in")
	}
	other, _, _ := pki.EphemeralClient("intruder")
	if _, serr := handshake(t, &tls.Config{RootCAs: pool(ca.Cert), ServerName: "loa.local", Certificates: []tls.Certificate{other}}, server); serr == nil {
		t.Fatal("a client with an unknown self-signed certificate was let in")
	}
	otherDir := t.TempDir()
	_, otherSrv, err := pki.Init(opts(otherDir), "", []string{"loa.local"})
	if err != nil {
		t.Fatal(err)
	}
	if cerr, _ := handshake(t, pki.Pinned(otherSrv.Cert, mine), server); cerr == nil {
		t.Fatal("the pinned client accepted another server certificate")
	}
}
