package web

import (
	"strings"
	"testing"
	"time"

	"github.com/tetherproxy/tether/proxy"
)

func TestCheckToken(t *testing.T) {
	for _, tc := range []struct {
		tok string
		ok  bool
	}{
		{"aaaaaaaaaaaaaaaa", false},                // issue 17: sixteen a's were accepted
		{"0123456789abcdef", false},                // a run
		{"password12345678", false},                // a word and a run
		{"abcabcabcabcabcabcabc", false},           // few distinct characters
		{"short", false},                           //
		{"3f9c2a7e1b4d8065c7e2f1a9b3d5e708", true}, // openssl rand -hex 16
		{"q8ZtR1xWv0LkP3mN7cYb2A", true},           // base64 of 16 bytes
		{"s3cret-token-0123456789", true},          // the tests' token
		{"correct-horse-battery-staple-42", true},  // a passphrase
	} {
		err := CheckToken(tc.tok)
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v (%.0f bits), want ok=%v", tc.tok, err, tokenBits(tc.tok), tc.ok)
		}
		if err != nil && len(tc.tok) >= minTokenLen && !strings.Contains(err.Error(), "predictable") {
			t.Errorf("%q: the reason %q does not say why", tc.tok, err)
		}
	}
}

func TestLowEntropyTokenRefusedAtStart(t *testing.T) {
	c := DefaultConfig()
	c.Token = strings.Repeat("a", 16)
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "predictable") {
		t.Fatalf("validate: %v", err)
	}
}

// The proxy strips cookies by this prefix; the admin's must carry it.
func TestAdminCookiesCarryTheProxyPrefix(t *testing.T) {
	for _, n := range []string{sessionCookie, csrfCookie} {
		if !strings.HasPrefix(n, proxy.AdminCookiePrefix) {
			t.Errorf("cookie %q does not start with %q", n, proxy.AdminCookiePrefix)
		}
	}
}

func TestSessionStoreBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newSessionStore(3)
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, s.create(now.Add(time.Duration(i+1)*time.Minute), now))
	}
	if len(s.m) != 3 {
		t.Fatalf("%d sessions kept, bound 3", len(s.m))
	}
	if s.valid(ids[0], now) || !s.valid(ids[4], now) {
		t.Fatal("the session closest to its end was not the one dropped")
	}
	s.revoke(ids[4])
	if s.valid(ids[4], now) {
		t.Fatal("revoked session still valid")
	}
	if s.valid(ids[3], now.Add(time.Hour)) {
		t.Fatal("expired session valid")
	}
}
