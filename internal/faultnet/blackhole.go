package faultnet

import (
	"net"
	"os"
	"sync"
	"time"
)

// blackhole is a connection whose writes succeed and vanish and whose reads
// wait for the deadline or Close: a stream lost in the network.
type blackhole struct {
	once     sync.Once
	done     chan struct{}
	mu       sync.Mutex
	deadline time.Time
}

func newBlackhole() *blackhole { return &blackhole{done: make(chan struct{})} }

var bhAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}

func (b *blackhole) Read([]byte) (int, error) {
	b.mu.Lock()
	dl := b.deadline
	b.mu.Unlock()
	var timeout <-chan time.Time
	if !dl.IsZero() {
		tm := time.NewTimer(time.Until(dl))
		defer tm.Stop()
		timeout = tm.C
	}
	select {
	case <-b.done:
		return 0, net.ErrClosed
	case <-timeout:
		return 0, os.ErrDeadlineExceeded
	}
}

func (b *blackhole) Write(p []byte) (int, error) {
	select {
	case <-b.done:
		return 0, net.ErrClosed
	default:
		return len(p), nil
	}
}

func (b *blackhole) Close() error {
	b.once.Do(func() { close(b.done) })
	return nil
}

func (b *blackhole) LocalAddr() net.Addr  { return bhAddr }
func (b *blackhole) RemoteAddr() net.Addr { return bhAddr }

func (b *blackhole) SetDeadline(t time.Time) error {
	b.mu.Lock()
	b.deadline = t
	b.mu.Unlock()
	return nil
}

func (b *blackhole) SetReadDeadline(t time.Time) error { return b.SetDeadline(t) }
func (b *blackhole) SetWriteDeadline(time.Time) error  { return nil }
