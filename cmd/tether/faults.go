package main

import "github.com/hashicorp/memberlist"

// installFaults is the test-only fault hook of the chaos suite
// (test/chaos). It is nil in every normal build; a build with
// `-tags faultinject` sets it (faultinject.go), and serve calls it once,
// before the first start step, so that the injected clock and transport
// are in place before the DB takes its first timestamp.
//
// It may replace n.now (the clock every part is given) and set
// n.wrapTransport (handed to gossip.Config.WrapTransport).
var installFaults func(n *node) error

// transportWrapper is gossip.Config.WrapTransport's type.
type transportWrapper = func(memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error)
