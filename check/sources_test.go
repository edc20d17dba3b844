package check

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

func TestSourceAddrs(t *testing.T) {
	tests := []struct {
		cidr    string
		n       int
		first   string
		last    string
		wantErr bool
	}{
		{"127.64.0.0/10", 3, "127.64.0.1", "127.64.0.3", false},
		{"127.64.0.0/10", 300, "127.64.0.1", "127.64.1.44", false},
		{"127.0.0.5/32", 1, "127.0.0.5", "127.0.0.5", false},
		{"127.0.0.4/31", 2, "127.0.0.4", "127.0.0.5", false},
		{"127.0.0.0/30", 3, "127.0.0.1", "127.0.0.3", false},
		{"127.0.0.0/30", 4, "", "", true},
		{"127.0.0.5/32", 2, "", "", true},
		{"fd00::/120", 2, "fd00::1", "fd00::2", false},
		{"127.64.9.9/10", 1, "127.64.0.1", "127.64.0.1", false}, // host bits are masked off
	}
	for _, tc := range tests {
		t.Run(tc.cidr, func(t *testing.T) {
			got, err := sourceAddrs(netip.MustParsePrefix(tc.cidr), tc.n)
			if tc.wantErr {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("err %v, want ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.n || got[0].String() != tc.first || got[len(got)-1].String() != tc.last {
				t.Fatalf("got %d addrs %v..%v, want %d %s..%s", len(got), got[0], got[len(got)-1], tc.n, tc.first, tc.last)
			}
			seen := map[netip.Addr]bool{}
			for _, a := range got {
				if seen[a] {
					t.Fatalf("duplicate %v", a)
				}
				seen[a] = true
			}
		})
	}
}

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestResolveTargets(t *testing.T) {
	r := fakeResolver{
		"localhost": {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		"mixed":     {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.1")},
		"remote":    {netip.MustParseAddr("192.0.2.7")},
	}
	tests := []struct {
		name     string
		targets  []string
		allow    bool
		wantErr  error
		loopback bool
	}{
		{"loopback literal", []string{"127.0.0.1:80", "[::1]:81", "127.9.9.9:1"}, false, nil, true},
		{"loopback name", []string{"localhost:80"}, false, nil, true},
		{"mapped loopback", []string{"[::ffff:127.0.0.1]:80"}, false, nil, true},
		{"remote literal", []string{"127.0.0.1:80", "192.0.2.1:80"}, false, ErrRemoteTarget, false},
		{"remote name", []string{"remote:80"}, false, ErrRemoteTarget, false},
		{"one remote address of a name", []string{"mixed:80"}, false, ErrRemoteTarget, false},
		{"remote allowed", []string{"remote:80"}, true, nil, false},
		{"unresolvable", []string{"nowhere:80"}, true, ErrResolve, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lb, _, err := resolveTargets(context.Background(), r, tc.targets, tc.allow)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err == nil && lb != tc.loopback {
				t.Fatalf("allLoopback %v, want %v", lb, tc.loopback)
			}
		})
	}
}
