package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"
)

// MinVersion is the oldest TLS version Loa speaks or accepts.
const MinVersion = tls.VersionTLS12

// Pinned is a client configuration that trusts exactly the certificate
// cert and nothing else, whatever names it has: the controller's own MQTT
// client uses it to reach its embedded broker on the loopback address,
// which the certificate need not name. certs are the client certificates to
// offer.
func Pinned(cert *x509.Certificate, certs ...tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   MinVersion,
		Certificates: certs,
		// The chain is checked below against the one certificate; names
		// and CAs play no part.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], cert.Raw) {
				return errors.New("the server's certificate is not the pinned one")
			}
			return nil
		},
	}
}

// EphemeralClient makes a self-signed client certificate (ECDSA P-256) for
// name that exists only in memory: added to a server's ClientCAs, it lets
// the program that made it in, and nobody else (the key never leaves this
// process).
func EphemeralClient(name string) (tls.Certificate, *x509.Certificate, error) {
	key, err := newKey()
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	cert, err := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: name, Organization: []string{"Loa"}, SerialNumber: fmt.Sprint(now.UnixNano())},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.AddDate(CAYears, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, key.Public(), nil, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("make client certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, cert, nil
}
