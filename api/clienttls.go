package api

import (
	"crypto/tls"
	"net/http"
)

// SetTLSConfig makes the client use cfg for https:// (e.g. RootCAs with the
// commune's CA). Call it before the first request.
func (c *Client) SetTLSConfig(cfg *tls.Config) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	c.http.Transport = t
}
