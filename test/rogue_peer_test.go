package test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/tetherproxy/tether/test/fleet"
)

// wire builds a tether gossip message byte by byte, after gossip/doc.go
// ("Wire format"): a type byte, a version byte, then msgpack values.
type wire struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

func newWire(typ, version byte) *wire {
	w := &wire{}
	w.buf.WriteByte(typ)
	w.buf.WriteByte(version)
	w.enc = msgpack.NewEncoder(&w.buf)
	return w
}

func (w *wire) str(s string) *wire  { _ = w.enc.EncodeString(s); return w }
func (w *wire) uint(v uint64) *wire { _ = w.enc.EncodeUint(v); return w }
func (w *wire) int(v int64) *wire   { _ = w.enc.EncodeInt(v); return w }
func (w *wire) null() *wire         { _ = w.enc.EncodeNil(); return w }
func (w *wire) bin(b []byte) *wire  { _ = w.enc.EncodeBytes(b); return w }
func (w *wire) raw(b ...byte) *wire { w.buf.Write(b); return w }
func (w *wire) bytes() []byte       { return bytes.Clone(w.buf.Bytes()) }
func (w *wire) strs(s ...string) *wire {
	w.uint(uint64(len(s)))
	for _, x := range s {
		w.str(x)
	}
	return w
}

// Message types and the wire version (gossip/doc.go).
const (
	wireGroup   = 1
	wireRequest = 2
	wireChunk   = 3
	wireVersion = 1
)

// bindGroup is a change group of `origin` (epoch, seq from) holding one
// bind of client to replica a, as a node would push it.
func bindGroup(sender string, epoch int64, from uint64, client netip.Addr, version byte) []byte {
	exp := time.Now().Add(10 * time.Minute).UnixMilli()
	ip := client.As4()
	return newWire(wireGroup, version).
		str(sender).strs(sender, "a").strs(appHost).
		uint(0).int(time.Now().UnixMilli()).                       // flags, made
		uint(0).int(epoch).uint(from).uint(1).                     // origin names[0], epoch, from, one event
		null().                                                    // no vector
		int(exp).                                                  // expiry base
		uint(1).bin(ip[:]).uint(0).uint(2).int(0).uint(1).uint(0). // bind, ip, host 0, rep names[1], +0, gen 1, origin 0
		bytes()
}

// rogueDelegate answers memberlist's push/pull with a state message that
// claims 4 billion names (a 5-byte msgpack header).
type rogueDelegate struct{ name string }

func (d rogueDelegate) NodeMeta(int) []byte             { return nil }
func (d rogueDelegate) NotifyMsg([]byte)                {}
func (d rogueDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d rogueDelegate) MergeRemoteState([]byte, bool)   {}
func (d rogueDelegate) LocalState(bool) []byte {
	return newWire(5, wireVersion).str(d.name).raw(0xce, 0xff, 0xff, 0xff, 0xff).bytes()
}

// metricSum adds the values of every series of a family whose labels
// contain all of the given label pairs (e.g. `peer="rogue"`).
func metricSum(t *testing.T, n *fleet.Node, family string, labels ...string) float64 {
	t.Helper()
	return metricText(t, n, "", family, labels...)
}

// TestRoguePeer (issue 8): a member holding the gossip key (an in-test
// memberlist node, joined to a 3-node fleet of real processes) sends
// malformed, truncated, oversized, huge-count, wrong-version, unknown-type,
// far-future-epoch and sequence-jump messages, unsolicited full-copy
// chunks, a push/pull state claiming 4 billion names, and floods range and
// full-copy requests. Every node stays up and ready, its memory stays
// bounded, each kind of refusal moves its counter in /metrics, and honest
// clients' bindings keep reaching every node. A well-formed group from the
// rogue (the control) is accepted, so the refusals are not an artefact of
// badly crafted bytes.
func TestRoguePeer(t *testing.T) {
	key := []byte("0123456789abcdef")
	_, spec := backends(t, "a", "b", "c")
	f := fleet.Start(t, bin, fleet.Options{Nodes: 3, Backends: spec,
		Env: map[string]string{"TETHER_GOSSIP_KEY": base64.StdEncoding.EncodeToString(key)}})

	const name = "rogue"
	mc := memberlist.DefaultLANConfig()
	mc.Name = name
	mc.BindAddr, mc.BindPort, mc.AdvertisePort = "127.0.0.1", 0, 0
	mc.SecretKey, mc.Label = key, "tether"
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.PushPullInterval = 500 * time.Millisecond
	mc.Delegate = rogueDelegate{name}
	mc.Logger = log.New(io.Discard, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	if _, err := ml.Join([]string{f.Nodes[0].Gossip}); err != nil {
		t.Fatal(err)
	}
	// The rogue addresses the nodes by their known gossip addresses: the
	// *Node values memberlist's Members returns are its own state, which
	// its packet handler updates in place (a data race if we send with them).
	targets := map[string]*memberlist.Node{}
	for _, n := range f.Nodes {
		ap := netip.MustParseAddrPort(n.Gossip)
		targets[n.Name] = &memberlist.Node{Name: n.Name, Addr: ap.Addr().AsSlice(), Port: ap.Port()}
	}
	waitFor(t, 10*time.Second, func() bool {
		if ml.NumMembers() < 4 {
			return false
		}
		// Every node must count the rogue a live peer, or it refuses its
		// requests as from a stranger (and the test would prove less).
		for _, n := range f.Nodes {
			if metricSum(t, n, "tether_replication_peer_live", `peer="rogue"`) != 1 {
				return false
			}
		}
		return true
	}, func() string { return "the rogue did not become a member everywhere" })

	before := map[string]float64{}
	rss, heap := map[string]float64{}, map[string]float64{}
	for _, n := range f.Nodes {
		rss[n.Name] = metricSum(t, n, "process_resident_memory_bytes")
		heap[n.Name] = metricSum(t, n, "go_memstats_heap_inuse_bytes")
	}
	type counter struct {
		family string
		labels []string
	}
	counters := map[string]counter{
		"decode":      {"tether_gossip_decode_errors_total", []string{`peer="rogue"`}},
		"cap":         {"tether_gossip_cap_breaches_total", []string{`peer="rogue"`}},
		"future":      {"tether_replication_refused_total", []string{`reason="future_epoch"`}},
		"deferred":    {"tether_replication_groups_total", []string{`outcome="deferred"`}},
		"jump":        {"tether_replication_refused_total", []string{`reason="seq_jump"`}},
		"rate":        {"tether_gossip_refused_total", []string{`reason="request_rate"`}},
		"unsolicited": {"tether_gossip_refused_total", []string{`reason="unsolicited"`}},
		"anonymous":   {"tether_gossip_decode_errors_total", []string{`peer="(not a member)"`}},
	}
	read := func(n *fleet.Node, k string) float64 {
		c := counters[k]
		return metricSum(t, n, c.family, c.labels...)
	}
	for _, n := range f.Nodes {
		for k := range counters {
			before[n.Name+"/"+k] = read(n, k)
		}
	}

	// The rogue's push/pull state (4 billion names) is refused first, before
	// any other attack: every node counts it against the rogue.
	for _, n := range f.Nodes {
		waitFor(t, 20*time.Second, func() bool { return read(n, "cap") > before[n.Name+"/cap"] },
			func() string { return n.Name + " did not count the rogue's push/pull state as over a cap" })
		before[n.Name+"/cap"] = read(n, "cap")
	}

	// Honest clients keep binding through the attack.
	honest := newClients(t, 150, 40_000, false)
	var served atomic.Int64
	stopHonest := make(chan struct{})
	honestDone := make(chan struct{})
	go func() {
		defer close(honestDone)
		ctx := ctxTimeout(t, 2*time.Minute)
		for i := 0; ; i++ {
			select {
			case <-stopHonest:
				return
			default:
			}
			c := honest.c[i%len(honest.c)]
			if _, err := c.Backend(ctx, f.Nodes[i%3].Proxy, appHost); err == nil {
				served.Add(1)
			}
		}
	}()

	now := time.Now().UnixMilli()
	epoch := now - 1000
	control := netip.MustParseAddr("10.77.0.1")
	valid := bindGroup(name, epoch, 1, control, wireVersion)
	big := make([]byte, 8<<20+16) // over Caps.MaxMessageBytes (8 MiB)
	copy(big, newWire(wireGroup, wireVersion).str(name).bytes())
	attacks := []struct {
		kind string
		msg  []byte
		n    int
	}{
		{"decode", newWire(wireGroup, wireVersion).str(name).raw(0xc1, 0xc1, 0xc1).bytes(), 20}, // malformed: msgpack's never-used code
		{"decode", valid[:len(valid)/2], 20},                                                    // truncated
		{"decode", bindGroup(name, epoch, 1, netip.MustParseAddr("10.77.0.2"), 2), 20},          // wrong version
		{"decode", newWire(99, wireVersion).str(name).bytes(), 20},                              // unknown type
		{"decode", newWire(wireGroup, wireVersion).str(strings.Repeat("x", 300)).bytes(), 5},    // sender name over 255 bytes (named nobody)
		{"cap", big, 3}, // oversized
		{"cap", newWire(wireGroup, wireVersion).str(name).raw(0xce, 0xff, 0xff, 0xff, 0xff).bytes(), 20}, // names: 4 billion
		{"cap", newWire(wireGroup, wireVersion).str(name).strs(name).strs().uint(0).int(now).uint(0).int(epoch).uint(1).
			raw(0xce, 0xff, 0xff, 0xff, 0xff).bytes(), 20}, // events: 4 billion
		{"future", bindGroup(name, now+24*3600_000, 1, netip.MustParseAddr("10.77.0.3"), wireVersion), 10}, // epoch a day ahead (past MaxFutureEpoch + MaxClockStep)
		{"deferred", bindGroup(name, now+20*60_000, 1, netip.MustParseAddr("10.77.0.5"), wireVersion), 3},  // 20 minutes ahead: waits for the clock, bounded
		{"jump", bindGroup(name, epoch, 1<<40, netip.MustParseAddr("10.77.0.4"), wireVersion), 10},         // 2^40 events ahead
		{"anonymous", []byte{wireGroup}, 20}, // one byte: not even a header
		{"unsolicited", newWire(wireChunk, wireVersion).str("ghost").uint(1).uint(0).uint(1).strs("ghost", "a").strs(appHost).uint(0).bytes(), 20}, // a copy chunk nobody asked for
	}
	send := func(to *memberlist.Node, msg []byte) {
		if err := ml.SendReliable(to, msg); err != nil {
			t.Logf("send to %s: %v", to.Name, err)
		}
	}
	// The control first: a well-formed group from the rogue is accepted.
	for _, n := range f.Nodes {
		send(targets[n.Name], valid)
	}
	for _, n := range f.Nodes {
		waitFor(t, 10*time.Second, func() bool {
			code, _, _ := n.Get("/api/v1/bindings/" + appHost + "/" + control.String())
			return code == http.StatusOK
		}, func() string {
			return n.Name + " did not accept the rogue's well-formed group: the crafted bytes are wrong"
		})
	}
	for _, a := range attacks {
		for _, n := range f.Nodes {
			for i := 0; i < a.n; i++ {
				send(targets[n.Name], a.msg)
			}
		}
	}
	// Floods: range requests for everything, and full copies.
	rangeReq := newWire(wireRequest, wireVersion).str(name).strs().strs().uint(0).uint(1).null().null().bytes()
	fullReq := newWire(wireRequest, wireVersion).str(name).strs().strs().uint(1).uint(3).null().null().bytes()
	for _, n := range f.Nodes {
		for i := 0; i < 600; i++ {
			_ = ml.SendBestEffort(targets[n.Name], rangeReq)
			if i%10 == 0 {
				send(targets[n.Name], fullReq)
			}
		}
	}

	// Every kind of refusal shows in /metrics on every node.
	for _, n := range f.Nodes {
		for _, k := range []string{"decode", "cap", "future", "deferred", "jump", "rate", "unsolicited", "anonymous"} {
			waitFor(t, 20*time.Second, func() bool { return read(n, k) > before[n.Name+"/"+k] }, func() string {
				c := counters[k]
				return fmt.Sprintf("%s: %s{%s} did not move (still %v)", n.Name, c.family, strings.Join(c.labels, ","), read(n, k))
			})
		}
		if d := read(n, "decode") - before[n.Name+"/decode"]; d < 80 {
			t.Errorf("%s: %v decode errors counted against the rogue, sent at least 80", n.Name, d)
		}
	}
	close(stopHonest)
	<-honestDone
	if served.Load() == 0 {
		t.Fatal("no honest request was served during the attack")
	}
	// The fleet still replicates honest bindings, and stays up and bounded.
	fresh := newClients(t, 50, 41_000, false)
	ctx := ctxTimeout(t, time.Minute)
	if err := fresh.each(16, func(i int, c *fleet.Client) error {
		_, err := c.Backend(ctx, f.Nodes[i%3].Proxy, appHost)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_ = ml.Shutdown() // leave before comparing digests: its bindings stay, the same everywhere
	waitConverged(t, f, 30*time.Second)
	for _, n := range f.Nodes {
		for _, c := range fresh.c {
			code, _, _ := n.Get("/api/v1/bindings/" + appHost + "/" + c.Addr.String())
			if code != http.StatusOK {
				t.Fatalf("%s lacks honest client %s's binding after the attack", n.Name, c.Addr)
			}
		}
		if err := n.WaitReady(5 * time.Second); err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		// The live heap is back near where it was (the oversized messages
		// are garbage once refused); resident memory may keep the peak,
		// which the race detector's shadow memory multiplies.
		after := metricSum(t, n, "process_resident_memory_bytes")
		t.Logf("%s: RSS %.0f -> %.0f MiB", n.Name, rss[n.Name]/(1<<20), after/(1<<20))
		rssBound := 64.0 * (1 << 20)
		if os.Getenv("FLEET_NORACE") == "" {
			rssBound = 1 << 30
		}
		if after > rss[n.Name]+rssBound {
			t.Errorf("%s: memory grew from %.0f to %.0f MiB", n.Name, rss[n.Name]/(1<<20), after/(1<<20))
		}
		waitFor(t, 20*time.Second, func() bool {
			return metricSum(t, n, "go_memstats_heap_inuse_bytes") < heap[n.Name]+32<<20
		}, func() string {
			return fmt.Sprintf("%s: live heap stays over %.0f MiB + 32 MiB", n.Name, heap[n.Name]/(1<<20))
		})
		if strings.Contains(n.Log(), "panic:") {
			t.Errorf("%s panicked", n.Name)
		}
	}
}

// waitFor polls cond every 50 ms until it holds, or fails the test with
// msg() (evaluated then, so it shows the last state) after timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
