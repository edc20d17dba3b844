package test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
)

// ticketKeys reads tether_tls_ticket_keys from a node's /metrics.
func ticketKeys(t *testing.T, n *fleet.Node) int {
	t.Helper()
	code, body, err := n.Get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s /metrics: %d %v", n.Name, code, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "tether_tls_ticket_keys "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(f)
		}
	}
	return 0
}

// resumeFleet starts two nodes with TLS listeners, with or without a
// gossip key, and waits until both hold ticket keys.
func resumeFleet(t *testing.T, key bool) (f *fleet.Fleet, tlsAddrs []string, site *edgeSite) {
	site = newEdgeSite(t)
	tlsAddrs = []string{fleet.FreePort(t), fleet.FreePort(t)}
	env := map[string]string{}
	if key {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			t.Fatal(err)
		}
		env["TETHER_GOSSIP_KEY"] = base64.StdEncoding.EncodeToString(k)
	}
	f = fleet.StartEach(t, bin, 2, fleet.Options{Backends: echoBackends(t, "r1", "r2"), Env: env},
		func(i int) map[string]string { return site.env(tlsAddrs[i]) })
	waitUntil(t, "both nodes hold TLS ticket keys", func() bool {
		return ticketKeys(t, f.Nodes[0]) >= 1 && ticketKeys(t, f.Nodes[1]) >= 1
	})
	return f, tlsAddrs, site
}

// checkTicketLogs checks the nodes' ticket key lines as the log test does
// every line: strict JSON, durations with units.
func checkTicketLogs(t *testing.T, f *fleet.Fleet) {
	t.Helper()
	for _, n := range f.Nodes {
		found := 0
		for _, line := range strings.Split(strings.TrimRight(n.Log(), "\n"), "\n") {
			if !strings.Contains(line, "ticket key") {
				continue
			}
			found++
			fields, err := strictObject([]byte(line))
			if err != nil {
				t.Errorf("%s: %v\n%s", n.Name, err, line)
				continue
			}
			for _, problem := range logLineProblems(fields) {
				t.Errorf("%s: %s\n%s", n.Name, problem, line)
			}
		}
		if found == 0 {
			t.Errorf("%s logged nothing about its ticket keys", n.Name)
		}
	}
}

// newResumer is an HTTPS client with its own session cache and one
// connection per request.
func newResumer(site *edgeSite, maxVersion uint16) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: site.ca.Pool, ServerName: "a.example", MaxVersion: maxVersion,
			ClientSessionCache: tls.NewLRUClientSessionCache(8)}}
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// didResume GETs addr with c and reports whether its TLS session resumed.
func didResume(t *testing.T, c *http.Client, addr string) bool {
	t.Helper()
	resp := get(t, c, "https://"+addr+"/", appHost)
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("%s: %d, TLS %v", addr, resp.StatusCode, resp.TLS != nil)
	}
	return resp.TLS.DidResume
}

// With a gossip key, a client that got its session ticket from node A
// resumes its TLS session on node B (and back), over TLS 1.3 and 1.2.
func TestEdgeResumeAcrossNodes(t *testing.T) {
	f, addrs, site := resumeFleet(t, true)
	for _, n := range f.Nodes {
		if !strings.Contains(n.Log(), "TLS session ticket keys shared fleet-wide") {
			t.Fatalf("%s does not say its ticket keys are shared:\n%s", n.Name, n.LogTail(20))
		}
	}
	checkTicketLogs(t, f)
	// The keys reach the other node within a gossip round trip; a client
	// may get a ticket under a key B does not hold yet only in that window.
	waitUntil(t, "a ticket from node0 resumes on node1", func() bool {
		c := newResumer(site, 0)
		if didResume(t, c, addrs[0]) {
			t.Fatal("the first handshake resumed")
		}
		return didResume(t, c, addrs[1])
	})
	for _, v := range []struct {
		name string
		max  uint16
	}{{"TLS 1.3", tls.VersionTLS13}, {"TLS 1.2", tls.VersionTLS12}} {
		for try := range 3 {
			c := newResumer(site, v.max)
			from, to := try%2, 1-try%2
			if didResume(t, c, addrs[from]) {
				t.Fatalf("%s: the first handshake resumed", v.name)
			}
			if !didResume(t, c, addrs[to]) {
				t.Fatalf("%s try %d: a ticket from node%d did not resume on node%d", v.name, try, from, to)
			}
		}
	}
}

// Without a gossip key the keys are each node's own (and it says so): a
// client resumes on the node that gave it its ticket, never on the other.
func TestEdgeNoResumeAcrossNodesWithoutGossipKey(t *testing.T) {
	f, addrs, site := resumeFleet(t, false)
	for _, n := range f.Nodes {
		if !strings.Contains(n.Log(), "TLS session ticket keys are this node's own") {
			t.Fatalf("%s does not say its ticket keys are its own:\n%s", n.Name, n.LogTail(20))
		}
	}
	checkTicketLogs(t, f)
	for try := range 4 {
		c := newResumer(site, 0)
		from, to := try%2, 1-try%2
		didResume(t, c, addrs[from])
		if !didResume(t, c, addrs[from]) {
			t.Fatalf("no resumption on node%d itself: the test proves nothing", from)
		}
		if didResume(t, c, addrs[to]) {
			t.Fatalf("a ticket of node%d resumed on node%d without a gossip key", from, to)
		}
	}
}
