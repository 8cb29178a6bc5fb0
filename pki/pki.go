package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/loa-commune/loa/internal/atomicfile"
	"github.com/loa-commune/loa/protocol"
)

// File names in the folder.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
)

// BoxCertFile and BoxKeyFile name a box's client certificate and key.
func BoxCertFile(id string) string { return "box-" + id + ".crt" }
func BoxKeyFile(id string) string  { return "box-" + id + ".key" }

// Lifetimes in years. A server certificate is renewed on the controller
// alone (`loa pki server --force`); a box's means a visit, so it lasts
// longer. Neither outlives the CA.
const (
	CAYears     = 10
	ServerYears = 2
	BoxYears    = 5
)

// NotBefore is when every certificate made here starts being valid: the
// earliest time a box believes (device.DefaultMinValidTime), so that a box
// still without the right time accepts them.
var NotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// ErrExists is returned when a file would be overwritten without Force.
var ErrExists = errors.New("certificate files already exist")

// ErrNoCA is returned when the folder has no CA to sign with.
var ErrNoCA = errors.New("no certificate authority")

// Options are what every issuing call shares.
type Options struct {
	// Dir is the folder of the files; created (0700) if missing.
	Dir string
	// Force overwrites existing files.
	Force bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Issued is a certificate that was written.
type Issued struct {
	CertFile string
	KeyFile  string
	Cert     *x509.Certificate
}

// Init creates the CA and the controller's server certificate for hosts
// (DNS names or IP addresses). name is the CA's common name ("" for
// "Loa commune CA <date> <random>"). It refuses, writing nothing, when any of the four files exists
// and o.Force is false.
func Init(o Options, name string, hosts []string) (ca, server Issued, err error) {
	dns, ips, err := parseHosts(hosts)
	if err != nil {
		return ca, server, err
	}
	if err := o.refuseExisting(CACertFile, CAKeyFile, ServerCertFile, ServerKeyFile); err != nil {
		return ca, server, err
	}
	now := o.now()
	if name == "" {
		// Distinct names keep two communes' CAs apart in error messages.
		var b [2]byte
		rand.Read(b[:])
		name = fmt.Sprintf("Loa commune CA %s %x", now.UTC().Format(time.DateOnly), b)
	}
	caKey, err := newKey()
	if err != nil {
		return ca, server, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Loa"}},
		NotBefore:             notBefore(now),
		NotAfter:              now.AddDate(CAYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caCert, err := sign(tmpl, caKey.Public(), nil, caKey)
	if err != nil {
		return ca, server, fmt.Errorf("make the CA certificate: %w", err)
	}
	if ca, err = o.write(CACertFile, CAKeyFile, caKey, caCert); err != nil {
		return ca, server, err
	}
	server, err = o.issueServer(caCert, caKey, dns, ips)
	return ca, server, err
}

// IssueServer makes a new server certificate for hosts with the CA in
// o.Dir, e.g. when the old one nears its end or the controller got a new
// address. Boxes need no change.
func IssueServer(o Options, hosts []string) (Issued, error) {
	dns, ips, err := parseHosts(hosts)
	if err != nil {
		return Issued{}, err
	}
	if err := o.refuseExisting(ServerCertFile, ServerKeyFile); err != nil {
		return Issued{}, err
	}
	caCert, caKey, err := LoadCA(o.Dir)
	if err != nil {
		return Issued{}, err
	}
	return o.issueServer(caCert, caKey, dns, ips)
}

func (o Options) issueServer(caCert *x509.Certificate, caKey crypto.Signer, dns []string, ips []net.IP) (Issued, error) {
	key, err := newKey()
	if err != nil {
		return Issued{}, err
	}
	now := o.now()
	cn := "localhost"
	if len(dns) > 0 {
		cn = dns[0]
	} else if len(ips) > 0 {
		cn = ips[0].String()
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"Loa"}},
		NotBefore:   notBefore(now),
		NotAfter:    capAt(now.AddDate(ServerYears, 0, 0), caCert.NotAfter),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    appendNew(dns, "localhost"),
		IPAddresses: appendIPs(ips, net.IPv4(127, 0, 0, 1), net.IPv6loopback),
	}
	cert, err := sign(tmpl, key.Public(), caCert, caKey)
	if err != nil {
		return Issued{}, fmt.Errorf("make the server certificate: %w", err)
	}
	return o.write(ServerCertFile, ServerKeyFile, key, cert, caCert)
}

// IssueBox makes the client certificate of box id with the CA in o.Dir.
func IssueBox(o Options, id string) (Issued, error) {
	if err := protocol.ValidName(id); err != nil {
		return Issued{}, fmt.Errorf("box id: %w", err)
	}
	if err := o.refuseExisting(BoxCertFile(id), BoxKeyFile(id)); err != nil {
		return Issued{}, err
	}
	caCert, caKey, err := LoadCA(o.Dir)
	if err != nil {
		return Issued{}, err
	}
	key, err := newKey()
	if err != nil {
		return Issued{}, err
	}
	now := o.now()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: id, Organization: []string{"Loa"}, OrganizationalUnit: []string{"box"}},
		NotBefore:   notBefore(now),
		NotAfter:    capAt(now.AddDate(BoxYears, 0, 0), caCert.NotAfter),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	cert, err := sign(tmpl, key.Public(), caCert, caKey)
	if err != nil {
		return Issued{}, fmt.Errorf("make the certificate of box %s: %w", id, err)
	}
	return o.write(BoxCertFile(id), BoxKeyFile(id), key, cert)
}

// LoadCA reads the CA certificate and key from dir.
func LoadCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w in %s: run `loa pki init --dir %s --host NAME` first", ErrNoCA, dir, dir)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read the CA: %w", err)
	}
	certs, err := ParseCerts(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("read the CA %s: %w", filepath.Join(dir, CACertFile), err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("read the CA key (only the folder `loa pki init` wrote has it): %w", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, nil, fmt.Errorf("read the CA key %s: no PEM block", filepath.Join(dir, CAKeyFile))
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("read the CA key %s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok || !certs[0].IsCA {
		return nil, nil, fmt.Errorf("read the CA in %s: not a CA certificate and key", dir)
	}
	return certs[0], signer, nil
}

// ParseCerts reads every CERTIFICATE block of PEM text; none is an error.
func ParseCerts(pemText []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, pemText = pem.Decode(pemText)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate (-----BEGIN CERTIFICATE-----) in it")
	}
	return certs, nil
}

// PoolFromPEM is a pool of every certificate in pemText.
func PoolFromPEM(pemText []byte) (*x509.CertPool, error) {
	certs, err := ParseCerts(pemText)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// EncodeCerts is the PEM text of certs.
func EncodeCerts(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// refuseExisting fails, naming them, when any of names exists in o.Dir and
// o.Force is false.
func (o Options) refuseExisting(names ...string) error {
	if o.Dir == "" {
		return errors.New("no folder given for the certificates")
	}
	if o.Force {
		return nil
	}
	var found []string
	for _, n := range names {
		p := filepath.Join(o.Dir, n)
		if _, err := os.Lstat(p); err == nil {
			found = append(found, p)
		}
	}
	if len(found) > 0 {
		return fmt.Errorf("%w: %s; nothing was written (--force replaces them)", ErrExists, strings.Join(found, ", "))
	}
	return nil
}

// write stores the key (0600) and then the certificate followed by chain
// (0644) and describes them.
func (o Options) write(certName, keyName string, key *ecdsa.PrivateKey, cert *x509.Certificate, chain ...*x509.Certificate) (Issued, error) {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return Issued{}, fmt.Errorf("create the certificate folder: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Issued{}, fmt.Errorf("encode key: %w", err)
	}
	is := Issued{CertFile: filepath.Join(o.Dir, certName), KeyFile: filepath.Join(o.Dir, keyName), Cert: cert}
	if err := atomicfile.Write(is.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return Issued{}, err
	}
	if err := atomicfile.Write(is.CertFile, EncodeCerts(append([]*x509.Certificate{cert}, chain...)...), 0o644); err != nil {
		return Issued{}, err
	}
	return is, nil
}

func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make key: %w", err)
	}
	return k, nil
}

// sign makes a certificate from tmpl with a fresh serial; a nil parent
// makes it self-signed.
func sign(tmpl *x509.Certificate, pub crypto.PublicKey, parent *x509.Certificate, key crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(1)) // never 0
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func notBefore(now time.Time) time.Time {
	if t := now.Add(-time.Hour).UTC(); t.Before(NotBefore) {
		return t
	}
	return NotBefore
}

func capAt(t, limit time.Time) time.Time {
	if t.After(limit) {
		return limit
	}
	return t
}

// parseHosts splits names and addresses and refuses what cannot be a host.
func parseHosts(hosts []string) (dns []string, ips []net.IP, err error) {
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			ips = appendIPs(ips, ip)
			continue
		}
		if h == "" || strings.ContainsAny(h, ":/ @") || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") {
			return nil, nil, fmt.Errorf("host %q is not a DNS name or an IP address: give each as --host loa.xa-son-thuy.vn or --host 192.168.1.10 (no scheme, no port)", h)
		}
		dns = appendNew(dns, strings.ToLower(h))
	}
	return dns, ips, nil
}

func appendNew(list []string, more ...string) []string {
	for _, s := range more {
		found := false
		for _, have := range list {
			found = found || have == s
		}
		if !found {
			list = append(list, s)
		}
	}
	return list
}

func appendIPs(list []net.IP, more ...net.IP) []net.IP {
	for _, ip := range more {
		found := false
		for _, have := range list {
			found = found || have.Equal(ip)
		}
		if !found {
			list = append(list, ip)
		}
	}
	return list
}

// DataCAFile is the file in the controller's data folder where `loa serve`
// puts the CA boxes trust, for a CLI on the same machine.
const DataCAFile = "ca.crt"
