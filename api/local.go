package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// NewLocalClient is a Client that calls h (the API's handler) in this
// process, with token, for a person at remoteAddr who reads lang: the web
// console acts through the same routes, roles, rate limits and audit log as
// the CLI, without a network hop.
func NewLocalClient(h http.Handler, token, remoteAddr, lang string) *Client {
	return &Client{base: "http://loa.local", token: token,
		http: &http.Client{Transport: localTransport{h: h, remoteAddr: remoteAddr, lang: lang}}}
}

// localTransport answers a request by serving it with h.
type localTransport struct {
	h          http.Handler
	remoteAddr string
	lang       string
}

func (t localTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.RemoteAddr = t.remoteAddr
	req.RequestURI = req.URL.RequestURI()
	if t.lang != "" {
		req.Header.Set("Accept-Language", t.lang)
	}
	if req.Body == nil {
		req.Body = http.NoBody
	}
	w := &bufferedResponse{header: http.Header{}}
	t.h.ServeHTTP(w, req)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(&w.body), ContentLength: int64(w.body.Len()), Request: req,
	}, nil
}

// bufferedResponse keeps what a handler writes. The API's answers to the
// console are JSON pages of bounded size.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedResponse) Header() http.Header { return w.header }

func (w *bufferedResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *bufferedResponse) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

// IsAPIPath says whether path belongs to the API rather than the console.
func IsAPIPath(path string) bool {
	return strings.HasPrefix(path, "/v1/") || path == "/metrics" || path == "/healthz"
}
