//go:build faultinject

// Test-only fault injection for the chaos suite (test/chaos). This file is
// compiled only with `go build -tags faultinject`; a normal build has no
// trace of it (installFaults stays nil, see faults.go).
//
// It is off unless TETHER_FAULT_DIR names a directory. Then the node:
//
//   - reads DIR/<node>.json, if present, before anything starts (so a
//     restarted node keeps its clock skew and network faults);
//   - wraps memberlist's transport in internal/faultnet, and hands every
//     part (stickydb, gossip, proxy, recovery, admin) a clock that is
//     time.Now plus the configured skew;
//   - serves a control endpoint on 127.0.0.1:0 and writes its address to
//     DIR/<node>.addr: POST /apply re-reads DIR/<node>.json and applies it
//     (answers 204 once in force), GET /stats answers faultnet's counters
//     and the skew in force as JSON.
//
// The state file is the whole fault state (a missing field is "none"):
//
//	{"skew_ms": -1500,          clock offset, ms (negative: behind)
//	 "loss": 0.2,               each UDP packet and TCP stream this node
//	                            sends is lost with this probability
//	 "delay_min_ms": 5, "delay_max_ms": 40,
//	                            each packet / stream dial waits a uniform
//	                            time in [min, max]: reordering
//	 "cut": ["node2"],          peers this node cannot send to (one-way;
//	                            cut both sides for a two-way partition)
//	 "peers": {"node2": "127.0.0.1:21001"},
//	                            gossip addresses of the peers, so that a
//	                            send by address alone (join, seeds) is
//	                            attributed to the peer it reaches
//	 "seed": 7}                 faultnet's random seed
//
// Faults act on what this node sends (faultnet's model): a one-way cut
// A->B drops A's packets to B and refuses A's dials to B; B's packets and
// the replies on streams B opened still reach A.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/tetherproxy/tether/internal/faultnet"
)

func init() { installFaults = startFaults }

// faultState is DIR/<node>.json.
type faultState struct {
	SkewMs     int64             `json:"skew_ms"`
	Loss       float64           `json:"loss"`
	DelayMinMs int64             `json:"delay_min_ms"`
	DelayMaxMs int64             `json:"delay_max_ms"`
	Cut        []string          `json:"cut"`
	Peers      map[string]string `json:"peers"`
	Seed       uint64            `json:"seed"`
}

type faults struct {
	self, file string
	skew       atomic.Int64 // ns
	net        *faultnet.Network

	mu    sync.Mutex
	names map[string]string // gossip "ip:port" -> node name
}

func startFaults(n *node) error {
	dir := os.Getenv("TETHER_FAULT_DIR")
	if dir == "" {
		return nil
	}
	f := &faults{self: n.cfg.NodeName, file: filepath.Join(dir, n.cfg.NodeName+".json"), names: map[string]string{}}
	st, err := f.read()
	if err != nil {
		return err
	}
	f.net = faultnet.New(st.Seed)
	f.apply(st)
	n.now = func() time.Time { return time.Now().Add(time.Duration(f.skew.Load())) }
	n.wrapTransport = func(inner memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error) {
		t, err := f.net.Wrap(f.self, inner)
		if err != nil {
			return nil, err
		}
		return &namedTransport{NodeAwareTransport: t, f: f}, nil
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apply", func(w http.ResponseWriter, r *http.Request) {
		st, err := f.read()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.apply(st)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			faultnet.Stats
			SkewMs int64 `json:"skew_ms"`
		}{f.net.Stats(), time.Duration(f.skew.Load()).Milliseconds()})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	n.onShutdown("fault control", func(ctx context.Context) error { return srv.Shutdown(ctx) })
	addrFile := filepath.Join(dir, f.self+".addr")
	if err := os.WriteFile(addrFile+".tmp", []byte(ln.Addr().String()), 0o644); err != nil {
		return err
	}
	if err := os.Rename(addrFile+".tmp", addrFile); err != nil {
		return err
	}
	n.log.Warn().Str("control", ln.Addr().String()).Int64("skew_ms", st.SkewMs).Float64("loss", st.Loss).
		Strs("cut", st.Cut).Msg("FAULT INJECTION build: test only")
	return nil
}

func (f *faults) read() (faultState, error) {
	var st faultState
	b, err := os.ReadFile(f.file)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("fault state %s: %w", f.file, err)
	}
	return st, nil
}

func (f *faults) apply(st faultState) {
	f.skew.Store(int64(time.Duration(st.SkewMs) * time.Millisecond))
	f.mu.Lock()
	clear(f.names)
	for name, addr := range st.Peers {
		f.names[addr] = name
	}
	f.mu.Unlock()
	f.net.Reset()
	f.net.SetLoss(st.Loss)
	f.net.SetDelay(time.Duration(st.DelayMinMs)*time.Millisecond, time.Duration(st.DelayMaxMs)*time.Millisecond)
	for _, peer := range st.Cut {
		f.net.Cut(f.self, peer)
	}
}

func (f *faults) nameOf(a memberlist.Address) memberlist.Address {
	if a.Name != "" {
		return a
	}
	f.mu.Lock()
	a.Name = f.names[a.Addr]
	f.mu.Unlock()
	return a
}

// namedTransport names the destination of a send by address alone (joins,
// seeds), so that a cut applies to it too.
type namedTransport struct {
	memberlist.NodeAwareTransport
	f *faults
}

func (t *namedTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *namedTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.NodeAwareTransport.WriteToAddress(b, t.f.nameOf(a))
}

func (t *namedTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *namedTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.NodeAwareTransport.DialAddressTimeout(t.f.nameOf(a), timeout)
}
