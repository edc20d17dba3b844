// Package demobackend is a stand-in for one replica of a stateful web app:
// its page says which replica served it and counts each client's visits, so
// stickiness shows in a browser and with curl. The demo, the tests and the
// benchmarks all use it as their backend.
//
// Every response carries the header X-Backend: <name>. GET /healthz answers
// 200, or 503 while the replica is marked unhealthy. The client is the
// right-most X-Forwarded-For address when present (set by the proxy), else
// the TCP peer.
package demobackend

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxClients bounds the visit table; past it, counting starts over.
const maxClients = 200_000

// Server is one demo replica.
type Server struct {
	name    string
	healthy atomic.Bool
	hits    atomic.Uint64

	mu     sync.Mutex
	visits map[string]uint64
}

// New returns a healthy replica called name.
func New(name string) *Server {
	s := &Server{name: name, visits: map[string]uint64{}}
	s.healthy.Store(true)
	return s
}

// Name returns the replica's name.
func (s *Server) Name() string { return s.name }

// Hits returns the number of requests served, health checks excluded.
func (s *Server) Hits() uint64 { return s.hits.Load() }

// SetHealthy makes /healthz answer 200 (true) or 503 (false).
func (s *Server) SetHealthy(ok bool) { s.healthy.Store(ok) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Backend", s.name)
	if r.URL.Path == "/healthz" {
		if !s.healthy.Load() {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
		return
	}
	s.hits.Add(1)
	client := ClientOf(r)
	s.mu.Lock()
	if len(s.visits) >= maxClients {
		clear(s.visits)
	}
	s.visits[client]++
	n := s.visits[client]
	s.mu.Unlock()
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>%[1]s</title><h1>served by %[1]s</h1><p>visit %[2]d from %[3]s to %[4]s</p>\n",
			html.EscapeString(s.name), n, html.EscapeString(client), html.EscapeString(r.Host))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "served by %s: visit %d from %s to %s\n", s.name, n, client, r.Host)
}

// ClientOf returns the client address of r: the right-most X-Forwarded-For
// entry, else the host part of RemoteAddr.
func ClientOf(r *http.Request) string {
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		last := xff[len(xff)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		if c := strings.TrimSpace(last); c != "" {
			return c
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Running is a replica listening on a real socket.
type Running struct {
	*Server
	URL string // http://host:port
	srv *http.Server
	ln  net.Listener
}

// Start serves a new replica called name on addr ("127.0.0.1:0" for any
// free port).
func Start(name, addr string) (*Running, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := New(name)
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &Running{Server: s, URL: "http://" + ln.Addr().String(), srv: srv, ln: ln}, nil
}

// Addr returns the listening address.
func (r *Running) Addr() string { return r.ln.Addr().String() }

// Close stops the replica at once, dropping open connections (a crash).
func (r *Running) Close() error { return r.srv.Close() }

// Shutdown stops the replica gracefully.
func (r *Running) Shutdown(ctx context.Context) error { return r.srv.Shutdown(ctx) }
