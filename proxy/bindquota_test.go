package proxy

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestBindQuotaPerSource: one address varying the Host makes Burst
// bindings and no more, every request still served, the same replica
// each time; another address is not affected, and hits cost nothing.
func TestBindQuotaPerSource(t *testing.T) {
	bs := startBackends(t, "a", "b", "c")
	r := newRig(t, Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a", "b", "c")}}, func(c *Config) {
		c.BindQuota = BindQuota{Burst: 5, PerSecond: 0.001}
	})
	attacker := clientFrom(t, clientIP(1))
	first := map[string]string{}
	for round := 0; round < 2; round++ {
		for i := 0; i < 20; i++ {
			host := fmt.Sprintf("h%d.attacker.test", i)
			code, be, _ := r.get(attacker, host, "/")
			if code != 200 {
				t.Fatalf("%s: status %d", host, code)
			}
			if round == 0 {
				first[host] = be
			} else if first[host] != be {
				t.Fatalf("%s moved from %s to %s without a binding", host, first[host], be)
			}
		}
	}
	if n := r.db.Len(); n != 5 {
		t.Fatalf("%d bindings from one address, want the burst of 5", n)
	}
	// The first five are bound and still hit.
	for i := 0; i < 5; i++ {
		r.binding(clientIP(1), fmt.Sprintf("h%d.attacker.test", i))
	}
	other := clientFrom(t, clientIP(2))
	for i := 0; i < 3; i++ {
		if code, _, _ := r.get(other, fmt.Sprintf("app%d.test", i), "/"); code != 200 {
			t.Fatal(code)
		}
	}
	if n := r.db.Len(); n != 8 {
		t.Fatalf("another address made %d bindings, want 3", n-5)
	}
}

func TestBindQuotaRefillsAndForgets(t *testing.T) {
	qb, err := newQuotaBindings(nil, BindQuota{Burst: 2, PerSecond: 1, MaxSources: quotaShards * 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("192.0.2.1")
	now := time.Unix(1000, 0)
	for i := 0; i < 2; i++ {
		if !qb.has(src, now, true) {
			t.Fatal("burst refused")
		}
	}
	if qb.has(src, now, false) {
		t.Fatal("past the burst")
	}
	if !qb.has(src, now.Add(1100*time.Millisecond), false) {
		t.Fatal("no refill after a second")
	}
	for i := 0; i < 1000; i++ {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		qb.has(a, now.Add(time.Duration(i)*time.Millisecond), true)
	}
	total := 0
	for i := range qb.shards {
		total += len(qb.shards[i].m)
	}
	if total > quotaShards*4 {
		t.Fatalf("%d sources tracked, bound %d", total, quotaShards*4)
	}
	v6a, v6b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	if quotaSource(v6a) != quotaSource(v6b) {
		t.Fatal("one IPv6 /64 counts as two sources")
	}
}
