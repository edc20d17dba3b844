package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// Cookie and header names. The proxy forwards client requests to backends
// that may share this host name (cookies are not isolated by port): both
// cookie names start with proxy.AdminCookiePrefix, "tether_admin_", and
// the proxy drops such cookies from what it forwards.
const (
	maxFormBody   = 64 << 10 // bytes of a form or JSON body
	sessionCookie = "tether_admin_session"
	csrfCookie    = "tether_admin_csrf"
	csrfField     = "_csrf"
	csrfHeader    = "X-CSRF-Token"
)

// authKind says how a request was let in: it decides whether it needs a
// CSRF token.
type authKind int

const (
	authOpen   authKind = iota // no token configured (loopback only)
	authBearer                 // Authorization: Bearer: not a browser's ambient credential
	authCookie                 // session cookie: ambient, so CSRF applies
)

type ctxKey int

const (
	ctxAuth ctxKey = iota
	ctxCSRF
)

// guard enforces the admin's security rules (see doc.go).
type guard struct {
	tokenHash  [32]byte // sha256 of the token; zero when open
	open       bool
	sessions   *sessionStore // this node's logins (authguard.go)
	attempts   *sourceLimiter
	csrfKey    []byte // MACs CSRF tokens
	listenHost string
	allowed    []string
	secure     bool
	ttl        time.Duration
	now        func() time.Time
	// noisy logs what any stranger can trigger per request (wrong tokens,
	// foreign Host or Origin, CSRF failures): sampled, a burst of 5 per
	// 10 s; the responses' status counters keep the numbers.
	noisy zerolog.Logger
}

func newGuard(c *Config) *guard {
	g := &guard{
		open:     c.Token == "",
		allowed:  c.AllowedHosts,
		secure:   c.SecureCookie,
		ttl:      c.SessionTTL,
		attempts: newSourceLimiter(rate.Limit(c.FailedAuthRate), c.FailedAuthBurst),
		sessions: newSessionStore(maxSessions),
		now:      c.Now,
		noisy:    zerolog.Nop(),
	}
	if c.Logger != nil {
		g.noisy = c.Logger.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})
	}
	g.listenHost, _, _ = net.SplitHostPort(c.Listen)
	g.listenHost = strings.ToLower(g.listenHost)
	if g.open {
		g.csrfKey = make([]byte, 32)
		_, _ = rand.Read(g.csrfKey) // crypto/rand.Read never fails (Go 1.24+)
		return g
	}
	g.tokenHash = sha256.Sum256([]byte(c.Token))
	g.csrfKey = derive(c.Token, "tether admin csrf v1")
	return g
}

func derive(secret, purpose string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// tokenOK compares in constant time. Hashing first makes the comparison
// independent of the length of the guess too.
func (g *guard) tokenOK(given string) bool {
	h := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(h[:], g.tokenHash[:]) == 1
}

// hostAllowed is the DNS-rebinding check. A rebinding attack needs a DNS
// name that the attacker controls and points at us; an IP literal, a
// localhost name (browsers resolve those to loopback themselves) or a name
// the operator listed cannot be one.
func (g *guard) hostAllowed(hostport string) bool {
	if hostport == "" {
		return true // HTTP/1.0 without Host: not a browser
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || (host == g.listenHost && host != "") {
		return true
	}
	for _, a := range g.allowed {
		a = strings.ToLower(a)
		if host == a || (strings.HasPrefix(a, "*.") && strings.HasSuffix(host, a[1:])) {
			return true
		}
	}
	return false
}

// originAllowed: a browser names the page that made a request in Origin.
// It must be this very listener (same host and port as Host: another port
// on the same host, such as the proxied app, is another origin), or a name
// the operator listed (a TLS front end).
func (g *guard) originAllowed(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	if sameHostPort(u.Host, u.Scheme, host) {
		return true
	}
	oh := strings.ToLower(u.Hostname())
	for _, a := range g.allowed {
		a = strings.ToLower(a)
		if oh == a || (strings.HasPrefix(a, "*.") && strings.HasSuffix(oh, a[1:])) {
			return true
		}
	}
	return false
}

func sameHostPort(originHost, scheme, host string) bool {
	norm := func(hp string) string {
		hp = strings.ToLower(hp)
		if h, p, err := net.SplitHostPort(hp); err == nil {
			if (scheme == "http" && p == "80") || (scheme == "https" && p == "443") {
				return strings.Trim(h, "[]")
			}
			return net.JoinHostPort(strings.Trim(h, "[]"), p)
		}
		return strings.Trim(hp, "[]")
	}
	return norm(originHost) == norm(host)
}

// filter applies the Host and Origin checks to every request, before
// authentication, so a rebinding page learns nothing at all.
func (s *Server) filter(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.guard.hostAllowed(r.Host) {
			s.guard.noisy.Warn().Str("host", r.Host).Str("remote", r.RemoteAddr).Msg("admin: foreign Host refused")
			s.fail(w, r, http.StatusForbidden, "Host header "+strconv.Quote(r.Host)+" is not allowed (DNS rebinding protection; add it to the allowed hosts)")
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !s.guard.originAllowed(o, r.Host) {
			s.guard.noisy.Warn().Str("origin", o).Str("remote", r.RemoteAddr).Msg("admin: foreign Origin refused")
			s.fail(w, r, http.StatusForbidden, "Origin "+strconv.Quote(o)+" is not allowed")
			return
		}
		if unsafeMethod(r.Method) {
			if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
				s.fail(w, r, http.StatusForbidden, "cross-site request refused")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		}
		next.ServeHTTP(w, r)
	})
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// authenticate lets a request in by bearer token or session cookie, or
// sends it to the login page (HTML) or answers 401 (API, metrics).
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := s.guard
		kind := authOpen
		if !g.open {
			switch {
			case r.Header.Get("Authorization") != "":
				// Limited before the comparison: once a source has spent
				// its failures, the right token is refused as well, so
				// guessing faster than the limit learns nothing.
				src := sourceOf(r)
				if g.attempts.limited(src, g.now()) {
					s.fail(w, r, http.StatusTooManyRequests, "too many failed authentications from this address; retry later")
					return
				}
				if !g.bearer(r) {
					g.attempts.fail(src, g.now())
					g.noisy.Warn().Str("remote", r.RemoteAddr).Msg("admin: wrong bearer token")
					w.Header().Set("WWW-Authenticate", `Bearer realm="tether", error="invalid_token"`)
					s.fail(w, r, http.StatusUnauthorized, "invalid token")
					return
				}
				kind = authBearer
			case g.sessionOK(r):
				kind = authCookie
			default:
				if isHTMLPath(r.URL.Path) && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
					http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="tether"`)
				s.fail(w, r, http.StatusUnauthorized, "authentication required: send Authorization: Bearer <token> or log in")
				return
			}
		}
		ctx := context.WithValue(r.Context(), ctxAuth, kind)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// bearer checks the Authorization header's bearer token.
func (g *guard) bearer(r *http.Request) bool {
	scheme, tok, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return g.tokenOK(strings.TrimSpace(tok))
}

// Sessions live on the node that made them (authguard.go): the cookie is
// a random id, logout forgets it, and a restart or a token change ends
// every session.
func (g *guard) newSession() (value string, expires time.Time) {
	expires = g.now().Add(g.ttl)
	return g.sessions.create(expires, g.now()), expires
}

func (g *guard) sessionOK(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	return err == nil && g.sessions.valid(c.Value, g.now())
}

func (g *guard) endSession(r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		g.sessions.revoke(c.Value)
	}
}

func (g *guard) mac(key []byte, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrf makes sure the browser has a CSRF nonce cookie and puts the token
// derived from it in the request context for the templates. The token is a
// MAC of the nonce: a page on another port of this host can plant a cookie
// (cookies ignore ports) but cannot compute the token that goes with it.
func (s *Server) csrf(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := s.guard
		nonce := ""
		if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 16 && len(c.Value) <= 64 {
			nonce = c.Value
		}
		if unsafeMethod(r.Method) && needsCSRF(r) {
			given := r.Header.Get(csrfHeader)
			if given == "" && isForm(r) {
				given = r.PostFormValue(csrfField)
			}
			if nonce == "" || given == "" || !hmac.Equal([]byte(given), []byte(g.mac(g.csrfKey, nonce))) {
				s.guard.noisy.Warn().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Msg("admin: missing or wrong CSRF token")
				status, msg := csrfRefusal(r)
				s.fail(w, r, status, msg)
				return
			}
		}
		if nonce == "" && isHTMLPath(r.URL.Path) {
			var b [18]byte
			_, _ = rand.Read(b[:])
			nonce = base64.RawURLEncoding.EncodeToString(b[:])
			http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: nonce, Path: "/", HttpOnly: true,
				SameSite: http.SameSiteStrictMode, Secure: g.secure || r.TLS != nil})
		}
		if nonce != "" {
			r = r.WithContext(context.WithValue(r.Context(), ctxCSRF, g.mac(g.csrfKey, nonce)))
		}
		next.ServeHTTP(w, r)
	})
}

// needsCSRF: every unsafe request a browser can make with an ambient
// credential needs a token: cookie-authenticated ones, HTML form routes,
// and bodies a cross-site form could send (anything not JSON). A JSON API
// call with a bearer token, or one without any credential on an open
// loopback listener, cannot come from another site's form, and its Origin
// was checked already.
func needsCSRF(r *http.Request) bool {
	switch k, _ := r.Context().Value(ctxAuth).(authKind); k {
	case authCookie:
		return true
	case authBearer:
		return false
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		return true
	}
	ct := r.Header.Get("Content-Type")
	return ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json")
}

func isForm(r *http.Request) bool {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data")
}

func csrfToken(r *http.Request) string {
	t, _ := r.Context().Value(ctxCSRF).(string)
	return t
}

// isHTMLPath: the paths that render pages (a browser navigates to them).
func isHTMLPath(p string) bool {
	return !strings.HasPrefix(p, "/api/") && p != "/metrics" && p != "/healthz" && p != "/readyz" && !strings.HasPrefix(p, "/static/")
}

// headers sets the security headers on every response. The CSP allows no
// inline script or style: the JavaScript and CSS are embedded files.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: under no-referrer browsers send
		// "Origin: null" on this page's own form posts, which the Origin
		// check must refuse.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// audit logs every request that may change something, once answered:
// who (address, how authenticated), what, and the outcome.
func (s *Server) audit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !unsafeMethod(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		via := "open"
		switch k, _ := r.Context().Value(ctxAuth).(authKind); k {
		case authBearer:
			via = "bearer"
		case authCookie:
			via = "session"
		}
		s.log.Info().Str("method", r.Method).Str("path", r.URL.Path).Int("status", ww.Status()).
			Str("remote", r.RemoteAddr).Str("auth", via).Msg("admin: audit")
	})
}
