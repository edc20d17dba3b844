package proxy

import (
	"net/netip"
	"strings"
	"testing"
)

func prefixes(ss ...string) Trusted {
	var t Trusted
	for _, s := range ss {
		t = append(t, netip.MustParsePrefix(s))
	}
	return t
}

func TestClientIP(t *testing.T) {
	trusted := prefixes("10.0.0.0/8", "2001:db8:1::/48")
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name     string
		peer     string
		xff, fwd []string
		trusted  Trusted
		want     string
	}{
		{"no trust: peer", "192.0.2.1", []string{"203.0.113.5"}, nil, nil, "192.0.2.1"},
		{"untrusted peer ignores xff", "192.0.2.1", []string{"203.0.113.5"}, nil, trusted, "192.0.2.1"},
		{"trusted peer, one hop", "10.0.0.1", []string{"203.0.113.5"}, nil, trusted, "203.0.113.5"},
		{"right-most untrusted", "10.0.0.1", []string{"1.1.1.1, 203.0.113.5, 10.0.0.7"}, nil, trusted, "203.0.113.5"},
		{"spoofed left entries ignored", "10.0.0.1", []string{"6.6.6.6", "203.0.113.5"}, nil, trusted, "203.0.113.5"},
		{"several lines", "10.0.0.1", []string{"203.0.113.5", "10.0.0.9"}, nil, trusted, "203.0.113.5"},
		{"all trusted: left-most", "10.0.0.1", []string{"10.1.1.1, 10.2.2.2"}, nil, trusted, "10.1.1.1"},
		{"garbage stops at last trusted", "10.0.0.1", []string{"203.0.113.5, unknown, 10.0.0.3"}, nil, trusted, "10.0.0.3"},
		{"garbage right after peer", "10.0.0.1", []string{"bogus"}, nil, trusted, "10.0.0.1"},
		{"port in xff", "10.0.0.1", []string{"203.0.113.5:4711"}, nil, trusted, "203.0.113.5"},
		{"v6 in xff", "10.0.0.1", []string{"[2001:db8:2::5]:80"}, nil, trusted, "2001:db8:2::5"},
		{"mapped peer", "::ffff:10.0.0.1", []string{"203.0.113.5"}, nil, trusted, "203.0.113.5"},
		{"mapped result folded", "10.0.0.1", []string{"::ffff:203.0.113.5"}, nil, trusted, "203.0.113.5"},
		{"blank entries skipped", "10.0.0.1", []string{"203.0.113.5,, "}, nil, trusted, "203.0.113.5"},
		{"forwarded when no xff", "10.0.0.1", nil, []string{`for=203.0.113.5;proto=https, for="[2001:db8:1::2]:8080"`}, trusted, "203.0.113.5"},
		{"forwarded quoted v6", "10.0.0.1", nil, []string{`for="[2001:db8:2::17]:4711"`}, trusted, "2001:db8:2::17"},
		{"forwarded case", "10.0.0.1", nil, []string{`By=10.0.0.1;For=203.0.113.5`}, trusted, "203.0.113.5"},
		{"forwarded unknown stops", "10.0.0.1", nil, []string{`for=203.0.113.5, for=unknown`}, trusted, "10.0.0.1"},
		{"forwarded without for stops", "10.0.0.1", nil, []string{`proto=http`}, trusted, "10.0.0.1"},
		{"xff wins over forwarded", "10.0.0.1", []string{"203.0.113.5"}, []string{"for=198.51.100.1"}, trusted, "203.0.113.5"},
		{"forwarded ignored when untrusted", "192.0.2.1", nil, []string{"for=198.51.100.1"}, trusted, "192.0.2.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ClientIP(a(tc.peer), tc.xff, tc.fwd, tc.trusted)
			if got != a(tc.want) {
				t.Fatalf("ClientIP = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestClientIPAllocs(t *testing.T) {
	trusted := prefixes("10.0.0.0/8")
	peer := netip.MustParseAddr("10.0.0.1")
	xff := []string{"1.1.1.1, 203.0.113.5, 10.0.0.7"}
	if n := testing.AllocsPerRun(100, func() { ClientIP(peer, xff, nil, trusted) }); n != 0 {
		t.Fatalf("%v allocs, want 0", n)
	}
}

// FuzzForwarded: never panics; the result is the peer, or an address that
// appears in the headers; an untrusted peer is always the result.
func FuzzForwarded(f *testing.F) {
	f.Add("10.0.0.1", "203.0.113.5, 10.0.0.2", "")
	f.Add("10.0.0.1", "", `for="[2001:db8::1]:80";proto=https, for=10.9.9.9`)
	f.Add("192.0.2.1", "1.2.3.4", `for=5.6.7.8`)
	f.Add("10.0.0.1", "unknown,,", `for="\"x\"";by=";,"`)
	trusted := prefixes("10.0.0.0/8", "fd00::/8")
	f.Fuzz(func(t *testing.T, peerS, xffS, fwdS string) {
		peer, err := netip.ParseAddr(peerS)
		if err != nil {
			return
		}
		var xff, fwd []string
		if xffS != "" {
			xff = strings.Split(xffS, "\n")
		}
		if fwdS != "" {
			fwd = strings.Split(fwdS, "\n")
		}
		got := ClientIP(peer, xff, fwd, trusted)
		if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
			t.Fatalf("bad result %v", got)
		}
		if !trusted.Contains(peer) && got != peer.Unmap().WithZone("") {
			t.Fatalf("untrusted peer %v, got %v", peer, got)
		}
		if got == peer.Unmap().WithZone("") {
			return
		}
		// Otherwise the address must be spelled in the headers (in some form).
		found := false
		for _, s := range append(xff, fwd...) {
			for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(",; \t=\"\\", r) }) {
				if a, ok := parseNode(tok); ok && a == got {
					found = true
				}
			}
		}
		if !found {
			t.Fatalf("result %v not from peer %v nor headers xff=%q fwd=%q", got, peer, xff, fwd)
		}
	})
}
