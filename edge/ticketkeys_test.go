package edge

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tetherproxy/tether/internal/testcert"
)

// handshakeServer accepts TLS connections with cfg on loopback: each gets
// a handshake, one byte (so that a TLS 1.3 client reads the session
// ticket sent after the handshake) and a close.
func handshakeServer(tb testing.TB, cfg *tls.Config) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.Handshake() == nil {
					_, _ = tc.Write([]byte{1})
					// Wait for the client's close so the ticket is read.
					_, _ = io.Copy(io.Discard, tc)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// connect handshakes with addr and reads the byte; it reports whether the
// session was resumed.
func connect(tb testing.TB, addr string, cfg *tls.Config) bool {
	tb.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		tb.Fatal(err)
	}
	return c.ConnectionState().DidResume
}

func ticketServerConfig(tb testing.TB, ca *testcert.CA, dir string, min uint16) *tls.Config {
	tb.Helper()
	c, k, err := ca.Write(dir, "srv", []string{"a.example"}, time.Now().Add(24*time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	certs, err := NewCerts(Pair{Cert: c, Key: k}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := TLSConfig(certs, min)
	cfg.NextProtos = nil
	return cfg
}

func randomKeys(tb testing.TB, n int) [][32]byte {
	keys := make([][32]byte, n)
	for i := range keys {
		if _, err := rand.Read(keys[i][:]); err != nil {
			tb.Fatal(err)
		}
	}
	return keys
}

// Two listeners sharing the keys: a ticket from one resumes on the other,
// also after a rotation (the old key still decrypts); with keys of their
// own it does not, though each resumes its own tickets.
func TestTicketKeysResumeAcrossListeners(t *testing.T) {
	ca, err := testcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		name string
		min  uint16
		max  uint16
	}{{"tls1.2", tls.VersionTLS12, tls.VersionTLS12}, {"tls1.3", tls.VersionTLS13, tls.VersionTLS13}} {
		t.Run(v.name, func(t *testing.T) {
			dir := t.TempDir()
			reg := prometheus.NewRegistry()
			shared := NewTicketKeys(reg)
			cfgA, cfgB := ticketServerConfig(t, ca, dir, v.min), ticketServerConfig(t, ca, dir, v.min)
			shared.Attach(cfgA)
			keys := randomKeys(t, 1)
			shared.Set(keys)
			shared.Attach(cfgB) // attached after Set: gets the keys in force
			a, b := handshakeServer(t, cfgA), handshakeServer(t, cfgB)
			client := func() *tls.Config {
				return &tls.Config{RootCAs: ca.Pool, ServerName: "a.example", MaxVersion: v.max,
					ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			}
			cc := client()
			if connect(t, a, cc) {
				t.Fatal("the first handshake resumed")
			}
			if !connect(t, b, cc) {
				t.Fatal("a ticket of A did not resume on B (shared keys)")
			}
			// Rotation: B encrypts with a new key; a ticket under the old
			// key (held by a fresh client) still resumes on both.
			old := client()
			connect(t, a, old)
			shared.Set(append(randomKeys(t, 1), keys...))
			if !connect(t, b, old) {
				t.Fatal("a ticket under the previous key did not resume after a rotation")
			}
			if got := testutil.ToFloat64(shared.held); got != 2 {
				t.Fatalf("tether_tls_ticket_keys %v, want 2", got)
			}
			// The old key dropped: its tickets no longer resume.
			stale := client()
			connect(t, a, stale) // a ticket under the key about to go
			shared.Set(randomKeys(t, 1))
			if connect(t, b, stale) {
				t.Fatal("a ticket under a dropped key resumed")
			}

			// Keys of their own.
			cfgC, cfgD := ticketServerConfig(t, ca, dir, v.min), ticketServerConfig(t, ca, dir, v.min)
			own := NewTicketKeys(nil)
			own.Attach(cfgC)
			own.Set(randomKeys(t, 1))
			NewTicketKeys(nil).Attach(cfgD) // Go's own keys
			c, d := handshakeServer(t, cfgC), handshakeServer(t, cfgD)
			cc = client()
			connect(t, c, cc)
			if !connect(t, c, cc) {
				t.Fatal("no resumption on the same listener: the test proves nothing")
			}
			if connect(t, d, cc) {
				t.Fatal("a ticket resumed on a listener with other keys")
			}
		})
	}
}

// BenchmarkTLSHandshake measures a client's new connection to a local TLS
// listener (ECDSA P-256 certificate, Go's default key exchange:
// X25519MLKEM768 for TLS 1.3, X25519 for 1.2; tls1.3-x25519: a client
// offering X25519 only): a full handshake, and one
// resumed with a session ticket. Both ends run in this process, so ns/op
// is the CPU of both sides plus loopback latency; cpu-µs/op is the
// process's CPU time (client + server) per connection.
//
//	go test -run '^$' -bench TLSHandshake -benchtime 2s ./edge/
func BenchmarkTLSHandshake(b *testing.B) {
	ca, err := testcert.NewCA()
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		ver  uint16
		kex  []tls.CurveID // client's key exchanges; nil: Go's default
	}{{"tls1.2", tls.VersionTLS12, nil}, {"tls1.3", tls.VersionTLS13, nil}, {"tls1.3-x25519", tls.VersionTLS13, []tls.CurveID{tls.X25519}}} {
		for _, resume := range []bool{false, true} {
			name := v.name + "/full"
			if resume {
				name = v.name + "/resumed"
			}
			b.Run(name, func(b *testing.B) {
				cfg := ticketServerConfig(b, ca, b.TempDir(), v.ver)
				tk := NewTicketKeys(nil)
				tk.Attach(cfg)
				tk.Set(randomKeys(b, 3))
				addr := handshakeServer(b, cfg)
				cc := &tls.Config{RootCAs: ca.Pool, ServerName: "a.example", MaxVersion: v.ver, CurvePreferences: v.kex}
				if resume {
					cc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
					connect(b, addr, cc)
				}
				cpu0 := cpuTime()
				b.ResetTimer()
				for range b.N {
					if connect(b, addr, cc) != resume {
						b.Fatal(errors.New("resumption not as expected"))
					}
				}
				b.StopTimer()
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
	}
}
