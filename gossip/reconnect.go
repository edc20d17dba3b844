package gossip

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// Reconnecting to failed members.
//
// memberlist gossips to a member it declared dead only for
// GossipToTheDeadTime (5 s) and never probes or push/pulls with it again.
// After a partition longer than that (plus the suspicion time), each side
// holds the other dead and nothing crosses any more: the fleet stays split
// after the network heals. Like serf's reconnect, a node therefore joins
// the last address of every member that went away every
// ReconnectInterval, for ReconnectTimeout. The join's push/pull tells the
// far side that we held it dead; it refutes, and both sides see each other
// alive again. memberlist's leave event does not say whether the member
// failed or left (the Node it hands over keeps its first State), so a
// member that left gracefully is tried too: a refused connection, every
// ReconnectInterval, until it is back or the timeout passes.

// goneMember is a member that failed, and when.
type goneMember struct {
	addr  string
	since time.Time
}

// maxGone bounds the failed members remembered.
const maxGone = 1024

// memberFailed (memberlist's event goroutine, memberMu held) remembers a
// member that went away.
func (n *Node) memberFailed(node *memberlist.Node) {
	if len(n.gone) >= maxGone {
		return
	}
	n.gone[node.Name] = goneMember{addr: node.Address(), since: time.Now()}
}

// reconnectLoop joins failed members again until they are back or
// ReconnectTimeout has passed.
func (n *Node) reconnectLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.ReconnectInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		var addrs []string
		n.memberMu.Lock()
		for name, g := range n.gone {
			switch {
			case time.Since(g.since) > n.cfg.ReconnectTimeout:
				delete(n.gone, name)
			default:
				addrs = append(addrs, g.addr)
			}
		}
		n.memberMu.Unlock()
		if len(addrs) == 0 {
			continue
		}
		k, err := n.ml.Join(addrs)
		n.stats.reconnects.Add(uint64(k))
		n.log.Debug().Strs("addrs", addrs).Int("contacted", k).Err(err).Msg("reconnect to failed members")
	}
}
