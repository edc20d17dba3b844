// Package webtest starts an admin server (package web) against real parts
// for tests: the fleet tests and the browser test start one per node and
// talk to it over real loopback HTTP.
//
// It holds no fakes: give it the node's real *stickydb.DB (or the lead's
// wrapper), its gossip membership and its proxy. Fakes of the interfaces
// belong in the tests that need them.
package webtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/tetherproxy/tether/web"
)

// Instance is one started admin server.
type Instance struct {
	Server *web.Server
	// URL is "http://127.0.0.1:<port>".
	URL string
	// Token is the admin token ("" when the server runs open on loopback).
	Token  string
	Client *http.Client
}

// Start builds a web.Server from cfg and src, listens on an ephemeral
// loopback port (cfg.Listen is overridden) and shuts it down when the test
// ends. It fails the test on any error.
func Start(tb testing.TB, cfg web.Config, src web.Sources) *Instance {
	tb.Helper()
	cfg.Listen = "127.0.0.1:0"
	s, err := web.New(cfg, src)
	if err != nil {
		tb.Fatalf("webtest: %v", err)
	}
	if err := s.Start(); err != nil {
		tb.Fatalf("webtest: %v", err)
	}
	in := &Instance{Server: s, URL: s.URL(), Token: cfg.Token, Client: &http.Client{Timeout: 10 * time.Second}}
	tb.Cleanup(func() {
		in.Client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			tb.Errorf("webtest: shutdown: %v", err)
		}
	})
	return in
}

// Do sends a JSON API request (body marshalled when not nil) with the
// bearer token and decodes a 2xx answer into out (when not nil). It
// returns the status; a non-2xx answer's {"error"} comes back as err.
func (in *Instance) Do(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	rq, err := http.NewRequest(method, in.URL+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		rq.Header.Set("Content-Type", "application/json")
	}
	if in.Token != "" {
		rq.Header.Set("Authorization", "Bearer "+in.Token)
	}
	resp, err := in.Client.Do(rq)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(data, &e)
		return resp.StatusCode, fmt.Errorf("webtest: %s %s: %d %s", method, path, resp.StatusCode, e.Error)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("webtest: %s %s: decode: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Binding reads /api/v1/bindings/{host}/{client}: found is false on 404.
func (in *Instance) Binding(host, client string) (b web.BindingView, found bool, err error) {
	code, err := in.Do(http.MethodGet, "/api/v1/bindings/"+url.PathEscape(host)+"/"+url.PathEscape(client), nil, &b)
	if code == http.StatusNotFound {
		return b, false, nil
	}
	return b, err == nil, err
}

// Vector reads /api/v1/vector (its Digest compares nodes).
func (in *Instance) Vector() (web.VectorResponse, error) {
	var v web.VectorResponse
	_, err := in.Do(http.MethodGet, "/api/v1/vector", nil, &v)
	return v, err
}

// Eventually polls cond every 10 ms until it holds or timeout passes,
// then fails the test with msg.
func Eventually(tb testing.TB, timeout time.Duration, msg string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("webtest: not within %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
