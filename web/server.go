package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
)

// Server is the admin listener: pages, JSON API, /metrics and probes.
type Server struct {
	cfg      Config
	src      Sources
	log      zerolog.Logger
	now      func() time.Time
	guard    *guard
	registry *prometheus.Registry
	pages    *pages
	counts   *replicaCounts
	hist     *history
	// peerClient asks peers' admin APIs (fleet lookup).
	peerClient *http.Client
	handler    http.Handler
	// bindWaiters holds a token per request waiting for a binding
	// (GET /api/v1/bindings/{host}/{client}?wait=).
	bindWaiters chan struct{}

	mu   sync.Mutex
	http *http.Server
	ln   net.Listener
	done chan struct{}
	err  error
	// stopSampler ends the history sampler; samplerDone closes when it has.
	stopSampler chan struct{}
	samplerDone chan struct{}
}

// New checks the configuration (it refuses a non-loopback Listen without
// a token, ErrNoToken), registers the admin's collectors on cfg.Registry
// and builds the routes. It opens nothing: Start listens.
func New(cfg Config, src Sources) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if src.Core == nil {
		return nil, ErrNoCore
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, src: src, now: cfg.Now, log: zerolog.Nop(), bindWaiters: make(chan struct{}, maxBindingWaiters)}
	if cfg.Logger != nil {
		s.log = *cfg.Logger
	}
	s.guard = newGuard(&s.cfg)
	s.counts = &replicaCounts{core: src.Core, ttl: cfg.CountTTL, now: cfg.Now}
	s.hist = newHistory()
	s.peerClient = newPeerClient()
	s.registry = cfg.Registry
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
		s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if err := s.registry.Register(newCollector(s)); err != nil {
		return nil, fmt.Errorf("web: registering collectors: %w", err)
	}
	var err error
	if s.pages, err = loadPages(); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the admin's root handler (for tests and for embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Registry is what /metrics serves; other packages register collectors on it.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Start listens on Config.Listen and serves in a goroutine until Shutdown.
// It checks the bound address again: a name that resolved to a
// non-loopback address without a token is refused.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("web: listen %s: %w", s.cfg.Listen, err)
	}
	if s.guard.open {
		if ta, ok := ln.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
			_ = ln.Close()
			return fmt.Errorf("%w (bound %s)", ErrNoToken, ln.Addr())
		}
	}
	return s.Serve(ln)
}

// Serve serves on ln (which the Server then owns) in a goroutine.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil {
		return errors.New("web: already serving")
	}
	s.ln = ln
	s.done = make(chan struct{})
	s.http = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	srv, done := s.http, s.done
	s.stopSampler, s.samplerDone = make(chan struct{}), make(chan struct{})
	go s.runSampler(s.stopSampler, s.samplerDone)
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("admin: serve")
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
		}
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Bool("token", !s.guard.open).Msg("admin: listening")
	return nil
}

// Addr is the bound address (nil before Start).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// URL is "http://<bound address>" (for tests and logs).
func (s *Server) URL() string {
	if a := s.Addr(); a != nil {
		return "http://" + a.String()
	}
	return ""
}

// Shutdown stops accepting, waits for requests in flight until ctx ends,
// and waits for the serve goroutine.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, done := s.http, s.done
	stopSampler, samplerDone := s.stopSampler, s.samplerDone
	s.stopSampler = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if stopSampler != nil {
		close(stopSampler)
		<-samplerDone
	}
	s.peerClient.CloseIdleConnections()
	err := srv.Shutdown(ctx)
	if err != nil {
		_ = srv.Close()
	}
	<-done
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		err = s.err
	}
	return err
}

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer, headers, s.filter, middleware.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "no such page: "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
	})

	// Public: probes, static files, the login form.
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Handle("/static/*", s.static())
	r.Group(func(r chi.Router) {
		r.Use(s.csrf)
		r.Get("/login", s.loginPage)
		r.Post("/login", s.loginSubmit)
	})

	r.Group(func(r chi.Router) {
		r.Use(s.authenticate, s.audit, s.csrf)
		r.Post("/logout", s.logout)
		r.Method(http.MethodGet, "/metrics", s.metricsHandler())

		r.Get("/", s.overviewPage)
		r.Get("/bindings", s.bindingsPage)
		r.Post("/bindings/delete", s.bindingDeleteForm)
		r.Post("/bindings/rebind", s.bindingRebindForm)
		r.Get("/vectors", s.vectorsPage)
		r.Get("/backends", s.backendsPage)
		r.Get("/lookup", s.lookupPage)
		r.Post("/backends/drain", s.drainForm)
		r.Post("/routes/reload", s.reloadForm)

		r.Route("/api/v1", func(r chi.Router) {
			r.Get("/", s.apiIndex)
			r.Get("/node", s.apiNode)
			r.Get("/bindings", s.apiBindings)
			r.Get("/bindings/{host}/{client}", s.apiBindingGet)
			r.Delete("/bindings/{host}/{client}", s.apiBindingDelete)
			r.Put("/bindings/{host}/{client}", s.apiBindingPut)
			r.Get("/vector", s.apiVector)
			r.Get("/members", s.apiMembers)
			r.Get("/backends", s.apiBackends)
			r.Post("/backends/{name}/drain", s.apiDrain(true))
			r.Post("/backends/{name}/undrain", s.apiDrain(false))
			r.Post("/routes/reload", s.apiReload)
			r.Get("/changelog", s.apiChangelog)
			r.Get("/gaps", s.apiGaps)
			r.Get("/stats", s.apiStats)
			r.Get("/certificates", s.apiCertificates)
			r.Get("/lookup", s.apiLookup)
		})

		// Go's profiler, for an operator with the token (as Caddy's admin
		// has it): /debug/pprof/ lists the profiles; profile?seconds=N is a
		// CPU profile of the running node (go tool pprof URL).
		r.Get("/debug/pprof/", pprof.Index)
		r.Get("/debug/pprof/cmdline", pprof.Cmdline)
		r.Get("/debug/pprof/profile", pprof.Profile)
		r.Get("/debug/pprof/symbol", pprof.Symbol)
		r.Get("/debug/pprof/trace", pprof.Trace)
		r.Get("/debug/pprof/{name}", func(w http.ResponseWriter, r *http.Request) {
			pprof.Handler(chi.URLParam(r, "name")).ServeHTTP(w, r)
		})
	})
	return r
}

// errorBody is every JSON error: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}

// fail answers an error as JSON on the API, metrics and probes, and as a
// page elsewhere.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if isHTMLPath(r.URL.Path) && s.pages != nil && !strings.HasPrefix(r.Header.Get("Accept"), "application/json") {
		s.renderError(w, r, status, msg)
		return
	}
	writeJSON(w, status, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // application/json with nosniff: "<token>" reads better than "\u003ctoken\u003e"
	_ = enc.Encode(v)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "node": s.src.Core.Node()})
}

func (s *Server) ready() bool {
	return s.src.Node.Ready == nil || s.src.Node.Ready()
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"status": "ready", "node": s.src.Core.Node()}
	if why := s.src.Node.ReadyWhy; why != nil {
		body["why"] = why()
	}
	if !s.ready() {
		body["status"] = "not ready"
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}
