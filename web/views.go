package web

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// The view types are the JSON API's bodies and the templates' data alike,
// so the page and the API can never disagree.

// BindingView is one binding as the API and the Bindings page show it.
type BindingView struct {
	Client     string `json:"client"`
	Host       string `json:"host"`
	Replica    string `json:"replica"`
	Generation uint32 `json:"generation"`
	Origin     string `json:"origin"`
	Deleted    bool   `json:"deleted,omitempty"`
	// Expiry is the expiry announced to the fleet; LocalExpiry the time this
	// node serves it until (extended by hits here). Unix ms.
	Expiry      int64  `json:"expiry"`
	LocalExpiry int64  `json:"local_expiry"`
	TimeLeftMs  int64  `json:"time_left_ms"`
	TimeLeft    string `json:"time_left"` // "12m 04s"
}

func bindingView(k stickydb.Key, b stickydb.Binding, local int64, now time.Time) BindingView {
	left := max(local-now.UnixMilli(), 0)
	return BindingView{
		Client: k.Client().String(), Host: k.Host(), Replica: b.Replica, Generation: b.Generation,
		Origin: b.Origin, Deleted: b.Deleted, Expiry: b.Expiry, LocalExpiry: local,
		TimeLeftMs: left, TimeLeft: humanLeft(time.Duration(left) * time.Millisecond),
	}
}

// BindingsPage is GET /api/v1/bindings.
type BindingsPage struct {
	Bindings []BindingView `json:"bindings"`
	// Next is the cursor of the next page; "" on the last page.
	Next    string  `json:"next,omitempty"`
	Scanned int     `json:"scanned"`
	TookMs  float64 `json:"took_ms"`
	// Sorted names the order of a sorted search ("" = key order); such a
	// page holds the first rows of Matched, and Truncated says the sort
	// saw only the first sortCap matches in key order.
	Sorted    string `json:"sorted,omitempty"`
	Matched   int    `json:"matched,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}

// Pair is one (epoch, seq) of a version vector entry.
type Pair struct {
	Epoch int64  `json:"epoch"` // unix ms of the origin's clock when the epoch began
	Seq   uint64 `json:"seq"`
}

func vectorView(v stickydb.Vector) map[string][]Pair {
	out := make(map[string][]Pair, len(v))
	for o, ps := range v {
		pp := make([]Pair, len(ps))
		for i, p := range ps {
			pp[i] = Pair{p.Epoch, p.Seq}
		}
		out[o] = pp
	}
	return out
}

// Digest summarises the replicated state; equal digests, equal databases.
type Digest struct {
	Count    int    `json:"count"`
	Sum      string `json:"sum"` // 16 hex digits (a uint64 does not survive JSON numbers)
	MarginMs int64  `json:"margin_ms"`
}

func digestView(count int, sum uint64, margin time.Duration) Digest {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], sum)
	return Digest{Count: count, Sum: hex.EncodeToString(b[:]), MarginMs: margin.Milliseconds()}
}

// PeerVector is one row of the version vector table.
type PeerVector struct {
	Name   string            `json:"name"`
	Live   bool              `json:"live"`
	Heard  int64             `json:"heard"` // last group received, unix ms; 0 never
	Vector map[string][]Pair `json:"vector"`
	// Lag is how many events this node holds that the peer's last vector
	// does not show: the replication lag toward that peer, in events.
	Lag uint64 `json:"lag"`
}

// VectorResponse is GET /api/v1/vector.
type VectorResponse struct {
	Node   string            `json:"node"`
	Epoch  int64             `json:"epoch"`
	Seq    uint64            `json:"seq"`
	Vector map[string][]Pair `json:"vector"`
	Digest Digest            `json:"digest"`
	Len    int               `json:"len"`
	Table  []PeerVector      `json:"table"`
}

// lag counts the events of own that other lacks, origin by origin, in
// each origin's newest epoch of own (an older epoch's events are expiring).
func lag(own, other stickydb.Vector) uint64 {
	var n uint64
	for o := range own {
		p, ok := own.Latest(o)
		if !ok {
			continue
		}
		if got := other.Get(o, p.Epoch); got < p.Seq {
			n += p.Seq - got
		}
	}
	return n
}

func (s *Server) vectorResponse(now time.Time, margin time.Duration) VectorResponse {
	c := s.src.Core
	epoch, seq := c.Position()
	own := c.Vector()
	count, sum := c.Digest(now, margin)
	resp := VectorResponse{Node: c.Node(), Epoch: epoch, Seq: seq, Vector: vectorView(own),
		Digest: digestView(count, sum, margin), Len: c.Len(), Table: []PeerVector{}}
	for _, p := range c.Table() {
		resp.Table = append(resp.Table, PeerVector{Name: p.Name, Live: p.Live, Heard: p.Heard,
			Vector: vectorView(p.Vector), Lag: lag(own, p.Vector)})
	}
	return resp
}

// LogView is one change log: the own log or a row of the change log table.
type LogView struct {
	Origin string `json:"origin"`
	Events int    `json:"events"`
	Epoch  int64  `json:"epoch"`
	First  uint64 `json:"first"` // first event held: the truncation point
	Last   uint64 `json:"last"`
}

// ChangelogResponse is GET /api/v1/changelog.
type ChangelogResponse struct {
	Own   LogView   `json:"own"`
	Table []LogView `json:"table"` // change log table (other origins' cached events)
	// TableEvents sums the table's events.
	TableEvents int `json:"table_events"`
}

func (s *Server) changelog() ChangelogResponse {
	logs := s.src.Core.Logs()
	resp := ChangelogResponse{Table: []LogView{}}
	for i, l := range logs {
		v := LogView{l.Origin, l.Events, l.Epoch, l.First, l.Last}
		if i == 0 {
			resp.Own = v
			continue
		}
		resp.Table = append(resp.Table, v)
		resp.TableEvents += l.Events
	}
	return resp
}

// GapView is one recent gap request and who answered it.
type GapView struct {
	At         int64  `json:"at"`
	Origin     string `json:"origin"`
	Epoch      int64  `json:"epoch"`
	From       uint64 `json:"from"`
	To         uint64 `json:"to"`
	Asked      string `json:"asked"`
	Stage      string `json:"stage"`
	AnsweredBy string `json:"answered_by"`
}

func (s *Server) gaps() []GapView {
	gs := s.src.Core.RecentGaps()
	out := make([]GapView, 0, len(gs))
	for i := len(gs) - 1; i >= 0; i-- { // newest first
		g := gs[i]
		out = append(out, GapView{g.At, g.Origin, g.Epoch, g.From, g.To, g.Asked, g.Stage, g.AnsweredBy})
	}
	return out
}

// MemberView is a member with what replication knows of it.
type MemberView struct {
	Member
	Self bool `json:"self,omitempty"`
	// Known: the version vector table has a row for it (Heard and Lag
	// mean something).
	Known bool   `json:"known"`
	Heard int64  `json:"heard,omitempty"` // last group received from it, unix ms
	Lag   uint64 `json:"lag"`
}

func (s *Server) members() []MemberView {
	c := s.src.Core
	self := c.Node()
	var ms []Member
	if s.src.Members != nil {
		ms = s.src.Members.Members()
	}
	found := false
	for _, m := range ms {
		found = found || m.Name == self
	}
	if !found {
		ms = append(ms, Member{Name: self, Addr: s.cfg.Listen, State: "alive"})
	}
	own := c.Vector()
	table := map[string]stickydb.PeerInfo{}
	for _, p := range c.Table() {
		table[p.Name] = p
	}
	out := make([]MemberView, 0, len(ms))
	for _, m := range ms {
		v := MemberView{Member: m, Self: m.Name == self}
		if p, ok := table[m.Name]; ok {
			v.Known = true
			v.Heard = p.Heard
			v.Lag = lag(own, p.Vector)
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// BackendView is a backend with its binding count.
type BackendView struct {
	BackendStatus
	// Bindings counts the live bindings to this replica name (all pools),
	// from a table walk at most Config.CountTTL old.
	Bindings int `json:"bindings"`
}

func (s *Server) backends() []BackendView {
	if s.src.Backends == nil {
		return []BackendView{}
	}
	bs := s.src.Backends.Backends()
	counts := s.counts.get()
	out := make([]BackendView, 0, len(bs))
	for _, b := range bs {
		out = append(out, BackendView{BackendStatus: b, Bindings: counts[b.Name]})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Pool != out[j].Pool {
			return out[i].Pool < out[j].Pool
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// NodeView is this node's identity card (GET /api/v1/node).
type NodeView struct {
	Name     string  `json:"name"`
	Version  string  `json:"version"`
	Epoch    int64   `json:"epoch"`
	Seq      uint64  `json:"seq"`
	Started  int64   `json:"started"` // unix ms
	UptimeS  float64 `json:"uptime_s"`
	Uptime   string  `json:"uptime"`
	Ready    bool    `json:"ready"`
	Bindings int     `json:"bindings"` // entries held (Len)
	// Behind: while catching up, the pair of the target not covered yet.
	Behind string `json:"behind,omitempty"`
}

func (s *Server) nodeView(now time.Time) NodeView {
	c := s.src.Core
	epoch, seq := c.Position()
	v := NodeView{Name: c.Node(), Version: s.src.Node.Version, Epoch: epoch, Seq: seq, Ready: s.ready(), Bindings: c.Len()}
	if st := s.src.Node.Started; !st.IsZero() {
		v.Started = st.UnixMilli()
		v.UptimeS = now.Sub(st).Seconds()
		v.Uptime = humanAge(now.Sub(st))
	}
	if f := s.src.Node.ReadyBehind; f != nil && !v.Ready {
		v.Behind = f()
	}
	return v
}

// humanLeft renders a time left the way operators read it: "12m 04s",
// "1h 02m", "45s", "3d 04h".
func humanLeft(d time.Duration) string {
	if d <= 0 {
		return "expired"
	}
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm %02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh %02dm", s/3600, (s%3600)/60)
	default:
		return fmt.Sprintf("%dd %02dh", s/86400, (s%86400)/3600)
	}
}

// humanAge renders a past duration: "just now", "4s", "12m 04s", ...
func humanAge(d time.Duration) string {
	if d < time.Second {
		return "just now"
	}
	return humanLeft(d)
}
