package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Admin hardening (issue 17): per-source limits on token guesses, token
// strength, revocable sessions.

// minTokenBits is the least estimated entropy of an admin token.
const minTokenBits = 56

// CheckToken refuses an admin token that is short or predictable, and
// says why. The estimate is rough and errs on the strict side: the
// characters' Shannon entropy, counted only for characters that do not
// repeat or continue a run (a, b, c or 1, 2, 3) from the one before. A
// random token of 16 bytes in hex or base64 passes; sixteen "a"s, a word
// followed by digits, or "0123456789abcdef" do not.
func CheckToken(tok string) error {
	if len(tok) < minTokenLen {
		return fmt.Errorf("shorter than %d characters", minTokenLen)
	}
	if bits := tokenBits(tok); bits < minTokenBits {
		return fmt.Errorf("too predictable: about %.0f bits by a rough estimate (repeated, sequential or few distinct characters count little); want %d or more, e.g. from `openssl rand -hex 16`", bits, minTokenBits)
	}
	return nil
}

func tokenBits(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / float64(len(s))
			h -= p * math.Log2(p)
		}
	}
	free := 0
	for i := 0; i < len(s); i++ {
		if i == 0 || absDiff(s[i], s[i-1]) > 1 {
			free++
		}
	}
	return h * float64(free)
}

func absDiff(a, b byte) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

// sourceOf is the address a request's guesses count against: the TCP
// peer (IPv6: its /64).
func sourceOf(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a
}

// maxSources bounds the addresses whose failures are tracked; past it
// the table starts over (an attacker with that many addresses gets a fresh
// burst each, still at the limit's rate per address).
const maxSources = 10_000

// sourceLimiter bounds failed authentications per source address.
type sourceLimiter struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	m     map[netip.Addr]*rate.Limiter
}

func newSourceLimiter(r rate.Limit, burst int) *sourceLimiter {
	return &sourceLimiter{rate: r, burst: burst, m: map[netip.Addr]*rate.Limiter{}}
}

func (s *sourceLimiter) get(src netip.Addr) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.m[src]
	if l == nil {
		if len(s.m) >= maxSources {
			clear(s.m)
		}
		l = rate.NewLimiter(s.rate, s.burst)
		s.m[src] = l
	}
	return l
}

// limited: src has no failure left to spend; refuse before comparing.
func (s *sourceLimiter) limited(src netip.Addr, now time.Time) bool {
	return s.get(src).TokensAt(now) < 1
}

// fail spends one of src's failures.
func (s *sourceLimiter) fail(src netip.Addr, now time.Time) { s.get(src).AllowN(now, 1) }

// maxSessions bounds the logins a node keeps; past it the one closest to
// its end is dropped.
const maxSessions = 4096

// sessionStore holds this node's sessions by the SHA-256 of their id, so
// a lookup's timing says nothing about stored ids.
type sessionStore struct {
	mu  sync.Mutex
	m   map[[32]byte]time.Time // expiry
	max int
}

func newSessionStore(max int) *sessionStore {
	return &sessionStore{m: map[[32]byte]time.Time{}, max: max}
}

func (s *sessionStore) create(expires, now time.Time) string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		var soonest [32]byte
		first := true
		for k, exp := range s.m {
			if !exp.After(now) {
				delete(s.m, k)
				continue
			}
			if first || exp.Before(s.m[soonest]) {
				soonest, first = k, false
			}
		}
		if len(s.m) >= s.max {
			delete(s.m, soonest)
		}
	}
	s.m[sha256.Sum256([]byte(id))] = expires
	return id
}

func (s *sessionStore) valid(id string, now time.Time) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.m[k]
	if ok && !now.Before(exp) {
		delete(s.m, k)
		return false
	}
	return ok
}

func (s *sessionStore) revoke(id string) {
	s.mu.Lock()
	delete(s.m, sha256.Sum256([]byte(id)))
	s.mu.Unlock()
}
