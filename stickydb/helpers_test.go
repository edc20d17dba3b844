package stickydb

import (
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func mustKey(tb testing.TB, ip, host string) Key {
	tb.Helper()
	k, err := NewKey(netip.MustParseAddr(ip), host)
	if err != nil {
		tb.Fatalf("NewKey(%s, %s): %v", ip, host, err)
	}
	return k
}

func newTestDB(tb testing.TB, node string, now time.Time, mod ...func(*Config)) *DB {
	tb.Helper()
	cfg := DefaultConfig(node)
	cfg.Shards = 16
	for _, m := range mod {
		m(&cfg)
	}
	db, err := New(cfg, now)
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

func netipFrom(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
