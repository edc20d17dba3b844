package edge

import (
	"crypto/tls"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// TicketKeys holds the TLS session ticket keys of a node's TLS listener
// and puts them on its tls.Config (SetSessionTicketKeys: the first key
// encrypts new tickets, every key decrypts). The keys come from the
// fleet's replicated register (gossip's ticket keys): with an encrypted
// gossip every node holds the same keys, so a client resumes its session
// on whichever node it reaches. Until the first keys arrive the config
// uses Go's own per-process keys.
type TicketKeys struct {
	mu   sync.Mutex
	keys [][32]byte
	cfgs []*tls.Config

	held    prometheus.Gauge
	changes prometheus.Counter
}

// NewTicketKeys registers tether_tls_ticket_keys and
// tether_tls_ticket_key_changes_total with reg (nil: none).
func NewTicketKeys(reg prometheus.Registerer) *TicketKeys {
	t := &TicketKeys{
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tether_tls_ticket_keys",
			Help: "TLS session ticket keys in force (the newest encrypts, all decrypt); 0 until the first key is made or received.",
		}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tether_tls_ticket_key_changes_total",
			Help: "Changes of the TLS session ticket key set (rotations made here or received from the fleet).",
		}),
	}
	if reg != nil {
		reg.MustRegister(t.held, t.changes)
	}
	return t
}

// Set puts keys (newest first) on every attached config. Safe for
// concurrent use, also while handshakes run. An empty set is ignored.
func (t *TicketKeys) Set(keys [][32]byte) {
	if len(keys) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.keys = append([][32]byte(nil), keys...)
	for _, c := range t.cfgs {
		c.SetSessionTicketKeys(t.keys)
	}
	t.held.Set(float64(len(t.keys)))
	t.changes.Inc()
}

// Attach makes cfg use the keys, now and at every change.
func (t *TicketKeys) Attach(cfg *tls.Config) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cfgs = append(t.cfgs, cfg)
	if len(t.keys) > 0 {
		cfg.SetSessionTicketKeys(t.keys)
	}
}

// Len is the number of keys in force.
func (t *TicketKeys) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.keys)
}
