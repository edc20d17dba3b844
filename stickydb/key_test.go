package stickydb

import (
	"errors"
	"net/netip"
	"testing"
)

func TestNewKey(t *testing.T) {
	tests := []struct {
		name, ip, host string
		wantIP         string
		err            bool
	}{
		{"v4", "192.0.2.1", "shop.example", "192.0.2.1", false},
		{"v4-mapped folds to v4", "::ffff:192.0.2.1", "shop.example", "192.0.2.1", false},
		{"v6", "2001:db8::1", "shop.example", "2001:db8::1", false},
		{"zone dropped", "fe80::1%eth0", "a", "fe80::1", false},
		{"ipv6 literal host", "2001:db8::1", "[2001:db8::2]", "2001:db8::1", false},
		{"empty host", "192.0.2.1", "", "", true},
		{"upper case", "192.0.2.1", "Shop.example", "", true},
		{"space", "192.0.2.1", "shop example", "", true},
		{"control", "192.0.2.1", "shop\x00", "", true},
		{"too long", "192.0.2.1", string(make([]byte, 254)), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewKey(netip.MustParseAddr(tt.ip), tt.host)
			if tt.err {
				if !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("err = %v, want ErrInvalidKey", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := k.Client().String(); got != tt.wantIP {
				t.Errorf("Client() = %s, want %s", got, tt.wantIP)
			}
			if k.Host() != tt.host {
				t.Errorf("Host() = %s", k.Host())
			}
			// WithClient gives the key NewKey gives, from a key of
			// another client.
			other := mustKey(t, "198.51.100.7", tt.host)
			if w, err := other.WithClient(netip.MustParseAddr(tt.ip)); err != nil || w != k {
				t.Errorf("WithClient = %v, %v; want %v", w, err, k)
			}
		})
	}
	if _, err := (Key{}).WithClient(netip.MustParseAddr("192.0.2.1")); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("zero key WithClient: err = %v", err)
	}
	if _, err := mustKey(t, "192.0.2.1", "a").WithClient(netip.Addr{}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("WithClient(zero addr): err = %v", err)
	}
	if _, err := NewKey(netip.Addr{}, "a"); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("zero addr: err = %v", err)
	}
	a := mustKey(t, "192.0.2.1", "h")
	b := mustKey(t, "::ffff:192.0.2.1", "h")
	if a != b || a.Hash() != b.Hash() {
		t.Error("v4 and v4-mapped keys differ")
	}
}

func TestPickDeterministicAndWeighted(t *testing.T) {
	cands := []Candidate{{Name: "a", Weight: 1}, {Name: "b", Weight: 1}, {Name: "c", Weight: 2}}
	for i := range cands {
		cands[i].Hash = NameHash(cands[i].Name)
	}
	rev := []Candidate{cands[2], cands[1], cands[0]}
	counts := map[string]int{}
	for i := 0; i < 20000; i++ {
		k := mustKey(t, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String(), "h")
		p, q := Pick(k, cands), Pick(k, rev)
		if cands[p].Name != rev[q].Name {
			t.Fatalf("pick depends on candidate order for %v", k)
		}
		counts[cands[p].Name]++
	}
	// c has half the weight: expect ~10000, a and b ~5000 each.
	if counts["c"] < 9000 || counts["c"] > 11000 || counts["a"] < 4300 || counts["b"] < 4300 {
		t.Errorf("weighted split off: %v", counts)
	}
	if Pick(mustKey(t, "10.0.0.1", "h"), nil) != -1 {
		t.Error("Pick of no candidates should be -1")
	}
}

// Removing a replica moves only its own keys: the property pure hashing
// proxies lack and rendezvous hashing has.
func TestPickRemovalMovesOnlyItsKeys(t *testing.T) {
	all := []Candidate{{Name: "a", Weight: 1}, {Name: "b", Weight: 1}, {Name: "c", Weight: 1}, {Name: "d", Weight: 1}}
	for i := range all {
		all[i].Hash = NameHash(all[i].Name)
	}
	without := []Candidate{all[0], all[1], all[3]}
	for i := 0; i < 5000; i++ {
		k := mustKey(t, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String(), "h")
		before := all[Pick(k, all)].Name
		after := without[Pick(k, without)].Name
		if before != "c" && before != after {
			t.Fatalf("%v moved from %s to %s though only c left", k, before, after)
		}
	}
}
