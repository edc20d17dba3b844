package proxy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tetherproxy/tether/stickydb"
)

func TestNormalizeHost(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"example.com", "example.com", true},
		{"Example.COM", "example.com", true},
		{"example.com:8080", "example.com", true},
		{"example.com:", "example.com", true},
		{"example.com.", "example.com", true},
		{"EXAMPLE.com.:80", "example.com", true},
		{"127.0.0.1:80", "127.0.0.1", true},
		{"[::1]", "[::1]", true},
		{"[::1]:8080", "[::1]", true},
		{"[2001:DB8:0::1]:443", "[2001:db8::1]", true},
		{"[::ffff:1.2.3.4]", "[::ffff:1.2.3.4]", true},
		{"under_score.local", "under_score.local", true},
		{long63 + ".com", long63 + ".com", true},
		{"", "", false},
		{":80", "", false},
		{".", "", false},
		{".example.com", "", false},
		{"a..b", "", false},
		{"a b", "", false},
		{"a/b", "", false},
		{"a@b", "", false},
		{"example.com:http", "", false},
		{"example.com:65536", "", false},
		{"example.com:123456", "", false},
		{"::1", "", false},
		{"[::1", "", false},
		{"[::1]x", "", false},
		{"[1.2.3.4]", "", false},
		{"[fe80::1%25eth0]", "", false},
		{"[zz]", "", false},
		{long63 + "a.com", "", false},
		{strings.Repeat("a.", 127) + "ab", "", false}, // 256 bytes
		{"caf\xc3\xa9.com", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := NormalizeHost(tc.in)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("NormalizeHost(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestNormalizeHostAllocs(t *testing.T) {
	for _, h := range []string{"example.com", "example.com:8080", "[::1]:80"} {
		if n := testing.AllocsPerRun(100, func() { NormalizeHost(h) }); n != 0 {
			t.Errorf("NormalizeHost(%q): %v allocs, want 0", h, n)
		}
	}
}

// FuzzHost: never panics; an accepted host is a fixed point and a valid
// stickydb key host, so a request the proxy accepts always has a key.
func FuzzHost(f *testing.F) {
	for _, s := range []string{"example.com", "A.b:1", "[::1]:80", "[2001:DB8::1]", "a..b", "x.", "[fe80::1%25e]"} {
		f.Add(s)
	}
	client := netip.MustParseAddr("192.0.2.1")
	f.Fuzz(func(t *testing.T, in string) {
		h, ok := NormalizeHost(in)
		if !ok {
			if h != "" {
				t.Fatalf("rejected %q but returned %q", in, h)
			}
			return
		}
		if again, ok2 := NormalizeHost(h); !ok2 || again != h {
			t.Fatalf("not a fixed point: %q -> %q -> %q, %v", in, h, again, ok2)
		}
		if _, err := stickydb.NewKey(client, h); err != nil {
			t.Fatalf("accepted %q as %q but stickydb refuses it: %v", in, h, err)
		}
		if strings.ToLower(h) != h {
			t.Fatalf("not lower case: %q", h)
		}
	})
}
