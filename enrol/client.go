package enrol

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Path is the controller's enrolment route.
const Path = "/v1/enrol"

// Fetch enrols with the controller at baseURL (http:// or https://) and
// returns the box's configuration (YAML) and the controller's key.
//
// The box has no certificate yet, so an https:// controller's certificate
// is not checked here: what makes the answer trustworthy is the code. The
// answer is sealed to a key made for this request and signed by the key
// whose fingerprint the code carries, so a party in the way can neither
// read the box's token nor hand it a configuration of its own.
func Fetch(ctx context.Context, baseURL string, c Code) ([]byte, ed25519.PublicKey, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("%q is not the controller's address: give it as http://HOST:8080 or https://HOST:8443", baseURL)
	}
	req, priv, err := NewRequest(c)
	if err != nil {
		return nil, nil, err
	}
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(baseURL, "/")+Path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // see above: the code authenticates the answer
	}}
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach the controller at %s: %w", baseURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the controller's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, nil, errors.New(e.Error)
		}
		return nil, nil, fmt.Errorf("the controller at %s answered %s: is this the Loa controller's address?", baseURL, resp.Status)
	}
	var r Response
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, nil, ErrBadResponse
	}
	return Open(r, c, req, priv)
}
