package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tetherproxy/tether/gossip"
)

// gossipCollector exports what the gossip shell refused, whoever sent it:
// the admin's per-peer families (tether_gossip_decode_errors_total,
// tether_gossip_cap_breaches_total) only show members, so a message that
// names no sender, a request over a peer's rate limit, or a full-copy
// chunk nobody asked for would otherwise leave no trace in /metrics.
//
// It also exports what this node sends: tether's messages by transport and
// their bytes (memberlist's own probes and framing are not counted).
type gossipCollector struct {
	g          *gossip.Node
	refused    *prometheus.Desc
	suppressed *prometheus.Desc
	messages   *prometheus.Desc
	bytes      *prometheus.Desc
}

func newGossipCollector(g *gossip.Node) *gossipCollector {
	return &gossipCollector{g: g, refused: prometheus.NewDesc("tether_gossip_refused_total",
		"Gossip messages or requests refused, by reason: decode (did not decode, wrong version or type), "+
			"over_cap (over a size or count cap), core (refused by the core's checks), request_rate (over the "+
			"peer's range or full-copy request limit), unsolicited (copy messages nobody asked for), unknown_peer "+
			"(from or to a non-member), work_queue_full, outbox_full.", []string{"reason"}, nil),
		suppressed: prometheus.NewDesc("tether_gossip_log_lines_suppressed_total",
			"memberlist log lines left out by the per-kind rate limit (one per bad packet or connection otherwise).", nil, nil),
		messages: prometheus.NewDesc("tether_gossip_messages_sent_total",
			"tether messages sent to peers (change groups, heartbeats, requests, answers, copies), by transport: udp (best effort) or tcp (reliable).", []string{"transport"}, nil),
		bytes: prometheus.NewDesc("tether_gossip_bytes_sent_total",
			"Bytes of tether messages sent to peers, before memberlist's framing and encryption (about 50 bytes more per message).", nil, nil)}
}

func (c *gossipCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.refused
	ch <- c.suppressed
	ch <- c.messages
	ch <- c.bytes
}

func (c *gossipCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.g.Stats()
	for _, r := range []struct {
		reason string
		v      uint64
	}{
		{"decode", st.DecodeErrors}, {"over_cap", st.CapBreaches}, {"core", st.CoreRejects},
		{"request_rate", st.RequestsRefused}, {"unsolicited", st.Unsolicited}, {"unknown_peer", st.UnknownPeer},
		{"work_queue_full", st.WorkDropped}, {"outbox_full", st.OutboxDropped},
	} {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(r.v), r.reason)
	}
	ch <- prometheus.MustNewConstMetric(c.suppressed, prometheus.CounterValue, float64(st.LogSuppressed))
	ch <- prometheus.MustNewConstMetric(c.messages, prometheus.CounterValue, float64(st.MessagesUDP), "udp")
	ch <- prometheus.MustNewConstMetric(c.messages, prometheus.CounterValue, float64(st.MessagesTCP), "tcp")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(st.BytesSent))
}
