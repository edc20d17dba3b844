package proxy

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer is a replica written against the socket, for what a real
// server would not do: answer with exact bytes, close or hang on purpose,
// send bytes nobody asked for. Each connection runs serve on its own
// goroutine; Close waits for them.
type rawServer struct {
	ln      net.Listener
	accepts atomic.Int64 // connections that sent something (not health-check connects)
	closed  atomic.Int64 // of those, the ones whose serve returned (the server closed them, or they ended)
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]bool
}

func startRawServer(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				br := bufio.NewReader(c)
				if _, err := br.Peek(1); err != nil {
					return // a TCP health check: connect, close
				}
				s.accepts.Add(1)
				defer s.closed.Add(1)
				serve(c, br)
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

func (s *rawServer) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops accepting, closes every connection and waits for the
// handlers.
func (s *rawServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// readHead reads one request head (through the blank line) and returns
// its lines without line ends; ok is false when the connection ended.
func readHead(br *bufio.Reader) (lines []string, ok bool) {
	for i := 0; i < 1000; i++ {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, false
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return lines, true
		}
		lines = append(lines, line)
	}
	return nil, false
}

// waitGauge polls until get() reaches want.
func waitCount(t *testing.T, what string, want int64, get func() int64) {
	t.Helper()
	waitFor(t, what, 5*time.Second, func() bool { return get() == want })
}
