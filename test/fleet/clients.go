package fleet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Client is one simulated end user with its own loopback source address,
// as round-robin DNS would spread real users over the nodes.
type Client struct {
	Addr netip.Addr
	http *http.Client
}

// NewClient makes a client that dials from src (a 127.x.y.z address).
// keepAlive false opens a new connection per request.
func NewClient(src netip.Addr, keepAlive bool) *Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 3 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 4,
		IdleConnTimeout: 30 * time.Second, ResponseHeaderTimeout: 10 * time.Second}
	return &Client{Addr: src, http: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
}

// ClientAddr returns the i-th test client address: 127.64.0.0/10 and up,
// away from 127.0.0.1 where the servers listen.
func ClientAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(64 + i>>16), byte(i >> 8), byte(i)})
}

// Backend sends GET / to addr with the given Host and returns the serving
// replica (the X-Backend header).
func (c *Client) Backend(ctx context.Context, addr, host string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return resp.Header.Get("X-Backend"), nil
}

// Close drops the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }
