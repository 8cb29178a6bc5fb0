package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/pki"
)

// defaultServer is --server when neither the flag nor LOA_SERVER says.
const defaultServer = "http://127.0.0.1:8080"

func newPKI(g *globals) *cobra.Command {
	var o pki.Options
	cmd := &cobra.Command{
		Use:   "pki",
		Short: "Make TLS certificates for a commune without its own: a small CA, the controller's and boxes'",
		Long: "A commune that has no certificates makes its own small certificate authority (CA) here.\n" +
			"`loa pki init` writes the CA (10 years) and the controller's certificate (2 years) into --dir;\n" +
			"`loa pki box ID` a box's client certificate (5 years), for a broker that requires them (tls_client_ca);\n" +
			"`loa pki server` a new controller certificate from the same CA (renewal, a new address).\n" +
			"Keys are written with mode 0600; nothing is overwritten without --force.",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.Dir, "dir", envOr("LOA_PKI", "loa-pki"), "folder of the CA and certificates (env LOA_PKI)")
	pf.BoolVar(&o.Force, "force", false, "replace existing certificates and keys")

	var hosts []string
	var name string
	initCmd := &cobra.Command{
		Use:   "init --host NAME_OR_IP...",
		Short: "Create the CA and the controller's certificate for the names and addresses boxes use to reach it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(hosts) == 0 {
				return usageErr(errors.New("say how boxes reach the controller: --host NAME or --host IP (repeat for each; localhost and 127.0.0.1 are always included)"))
			}
			ca, srv, err := pki.Init(o, name, hosts)
			if errors.Is(err, pki.ErrExists) && !o.Force {
				return fmt.Errorf("%w.\nTo renew only the controller's certificate, run `loa pki server --dir %s --host ... --force`. "+
					"With --force, init makes a new CA, and every box then needs a new config", err, o.Dir)
			}
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"ca": issuedJSON(ca), "server": issuedJSON(srv)})
			}
			w := cmd.OutOrStdout()
			printIssued(w, "CA certificate (give it to boxes and staff computers)", ca)
			printIssued(w, "controller certificate", srv)
			fmt.Fprintln(w, messages.T(messages.PKIInitDone, abs(srv.CertFile), abs(srv.KeyFile), abs(ca.CertFile), hosts[0], hosts[0]))
			return nil
		},
	}
	initCmd.Flags().StringSliceVar(&hosts, "host", nil, "a DNS name or IP address of the controller (repeat, or comma-separated)")
	initCmd.Flags().StringVar(&name, "name", "", "the CA's name, e.g. \"Xã Sơn Thủy CA\" (default \"Loa commune CA\", the date and a random number)")

	var serverHosts []string
	serverCmd := &cobra.Command{
		Use:   "server --host NAME_OR_IP... --force",
		Short: "Make a new controller certificate with the existing CA",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(serverHosts) == 0 {
				return usageErr(errors.New("say how boxes reach the controller: --host NAME or --host IP"))
			}
			srv, err := pki.IssueServer(o, serverHosts)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), issuedJSON(srv))
			}
			printIssued(cmd.OutOrStdout(), "controller certificate", srv)
			fmt.Fprintln(cmd.OutOrStdout(), messages.T(messages.PKIServerDone))
			return nil
		},
	}
	serverCmd.Flags().StringSliceVar(&serverHosts, "host", nil, "a DNS name or IP address of the controller (repeat, or comma-separated)")

	boxCmd := &cobra.Command{
		Use:   "box ID",
		Short: "Make a box's client certificate (for a controller with tls_client_ca)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			box, err := pki.IssueBox(o, args[0])
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), issuedJSON(box))
			}
			printIssued(cmd.OutOrStdout(), "client certificate of box "+args[0], box)
			fmt.Fprintln(cmd.OutOrStdout(), messages.T(messages.PKIBoxDone, filepath.Base(box.CertFile), filepath.Base(box.KeyFile)))
			return nil
		},
	}
	cmd.AddCommand(initCmd, serverCmd, boxCmd)
	return cmd
}

func issuedJSON(is pki.Issued) map[string]any {
	out := map[string]any{"cert": abs(is.CertFile), "key": abs(is.KeyFile), "subject": is.Cert.Subject.CommonName,
		"not_after": is.Cert.NotAfter.UTC().Format(time.RFC3339)}
	if hosts := certHosts(is.Cert); len(hosts) > 0 {
		out["hosts"] = hosts
	}
	return out
}

func printIssued(w io.Writer, what string, is pki.Issued) {
	fmt.Fprintf(w, "Wrote %s: %s (key %s), valid until %s", what, abs(is.CertFile), abs(is.KeyFile), is.Cert.NotAfter.Format(time.DateOnly))
	if hosts := certHosts(is.Cert); len(hosts) > 0 {
		fmt.Fprintf(w, ", for %s", strings.Join(hosts, ", "))
	}
	fmt.Fprintln(w)
}

func certHosts(c *x509.Certificate) []string {
	hosts := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	return hosts
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// serverURL is --server; left at its default on the controller's machine
// whose controller serves HTTPS (it put its CA into the data folder), the
// same address over https.
func (g *globals) serverURL() string {
	if g.server == defaultServer && os.Getenv("LOA_SERVER") == "" && fileExists(filepath.Join(g.data, pki.DataCAFile)) {
		return "https://" + strings.TrimPrefix(defaultServer, "http://")
	}
	return g.server
}

// caFile is the CA certificate to trust: --ca, LOA_CA, or the data
// folder's; "" for the system's roots.
func (g *globals) caFile() string {
	if g.ca != "" {
		return g.ca
	}
	if p := filepath.Join(g.data, pki.DataCAFile); fileExists(p) {
		return p
	}
	return ""
}

// tlsConfig is the CLI's TLS configuration for an https:// controller.
func (g *globals) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: pki.MinVersion}
	if f := g.caFile(); f != "" {
		b, err := os.ReadFile(f)
		if err == nil {
			tc.RootCAs, err = pki.PoolFromPEM(b)
		}
		if err != nil {
			return nil, errors.New(messages.T(messages.BadCAFile, f, err))
		}
	}
	return tc, nil
}

// useTLS makes c trust the commune's CA when the controller is https://.
func (g *globals) useTLS(c *api.Client) error {
	if !strings.HasPrefix(g.serverURL(), "https://") {
		return nil
	}
	tc, err := g.tlsConfig()
	if err != nil {
		return err
	}
	c.SetTLSConfig(tc)
	return nil
}

// explainTLS turns what a TLS mismatch looks like to the API client (the
// controller unreachable, or a bare 400 from a controller that speaks only
// HTTPS) into what to do about it. Other errors pass unchanged.
func (g *globals) explainTLS(err error) error {
	if err == nil {
		return nil
	}
	u, perr := url.Parse(g.serverURL())
	if perr != nil || u.Host == "" {
		return err
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	host := net.JoinHostPort(u.Hostname(), port)
	var apiErr *api.APIError
	switch {
	case u.Scheme == "https" && errors.Is(err, api.ErrUnreachable):
		tc, cerr := g.tlsConfig()
		if cerr != nil {
			return err
		}
		tc.ServerName = u.Hostname()
		conn, derr := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", host, tc)
		if derr == nil {
			conn.Close()
			return err
		}
		var verr *tls.CertificateVerificationError
		if errors.As(derr, &verr) {
			return fmt.Errorf("%w: %s", api.ErrUnreachable, messages.T(messages.TLSUntrusted, u.Redacted(), verr.Err))
		}
	case u.Scheme == "http" && errors.As(err, &apiErr) && apiErr.Status == 400 && apiErr.Code == "":
		conn, derr := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", host,
			&tls.Config{InsecureSkipVerify: true}) // only to learn whether it speaks TLS; nothing is sent
		if derr == nil {
			conn.Close()
			https := *u
			https.Scheme = "https"
			return errors.New(messages.T(messages.TLSNeeded, u.Redacted(), https.Redacted()))
		}
	}
	return err
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
