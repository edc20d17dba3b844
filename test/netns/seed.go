package netns

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/rs/zerolog"
	"github.com/tetherproxy/tether/recovery"
	"github.com/tetherproxy/tether/stickydb"
)

// SeedAddr is the client address of the i-th seeded binding (172.16.0.0/12,
// never a test client's address).
func SeedAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{172, byte(16 + (i>>16)&15), byte(i >> 8), byte(i)})
}

// SeedDataDir writes a data directory for node holding n own bindings of
// host (client SeedAddr(i), replicas chosen round robin), as a node in disk
// mode leaves it after a clean stop: a snapshot and its log. The node
// started on it recovers them from disk (a short outage) and the fleet
// copies them from it.
func SeedDataDir(dir, node, host string, replicas []string, n int) error {
	return SeedDataDirKeys(dir, node, replicas, n, func(i int) (netip.Addr, string) { return SeedAddr(i), host })
}

// SeedDataDirKeys is SeedDataDir with the i-th binding's client and Host
// given by key (past a million bindings SeedAddr repeats: vary the Host).
func SeedDataDirKeys(dir, node string, replicas []string, n int, key func(i int) (netip.Addr, string)) error {
	now := time.Now()
	cfg := stickydb.DefaultConfig(node)
	cfg.Durable = true
	cfg.MaxBindings = max(cfg.MaxBindings, n+1)
	cfg.MaxBindingsPerOrigin = max(cfg.MaxBindingsPerOrigin, n+1)
	db, err := stickydb.New(cfg, now)
	if err != nil {
		return err
	}
	lg := zerolog.Nop()
	rc := recovery.DefaultConfig(dir)
	rc.Logger = &lg
	st, err := recovery.Open(rc)
	if err != nil {
		return err
	}
	rec, err := st.Recover(db, now)
	if err != nil {
		_ = st.Close()
		return err
	}
	for i := range n {
		a, host := key(i)
		k, err := stickydb.NewKey(a, host)
		if err != nil {
			_ = st.Close()
			return err
		}
		if _, _, err := db.BindIfAbsent(k, replicas[i%len(replicas)], now); err != nil {
			_ = st.Close()
			return fmt.Errorf("seed %d: %w", i, err)
		}
		if i%10_000 == 9_999 {
			if _, err := st.Flush(); err != nil {
				_ = st.Close()
				return err
			}
		}
	}
	if err := rec.ReconcileLocal(now); err != nil {
		_ = st.Close()
		return err
	}
	if _, err := st.Snapshot(context.Background()); err != nil {
		_ = st.Close()
		return err
	}
	return st.Close()
}
