package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// stdlibReader is a net/http server on loopback that reports the first
// request of every connection it is given, as its handler sees it: the
// reference FuzzRequestHead holds parseRequestHead to.
type stdlibReader struct {
	addr string
	got  chan *http.Request
}

func startStdlibReader(tb testing.TB) *stdlibReader {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	sr := &stdlibReader{addr: ln.Addr().String(), got: make(chan *http.Request, 1)}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			sr.got <- r
		}),
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    DefaultConfig().MaxHeaderBytes,
	}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return sr
}

// read sends data on a new connection and returns the request the server
// handled, or nil when it refused it (answered without calling the
// handler, or closed).
func (sr *stdlibReader) read(tb testing.TB, data []byte) *http.Request {
	c, err := net.Dial("tcp", sr.addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(data); err != nil {
		tb.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, c) // the server answers and closes
	select {
	case r := <-sr.got:
		return r
	default:
		return nil
	}
}

// headOf returns data's request head (through its blank line), or nil.
func headOf(data []byte) []byte {
	i := bytes.Index(data, crlfcrlf)
	if i < 0 {
		return nil
	}
	return data[:i+4]
}

// sameRequest compares what parseRequestHead read with what net/http's
// server handed its handler.
func sameRequest(ours, std *http.Request) error {
	switch {
	case ours.Method != std.Method:
		return fmt.Errorf("method %q, stdlib %q", ours.Method, std.Method)
	case ours.RequestURI != std.RequestURI:
		return fmt.Errorf("request URI %q, stdlib %q", ours.RequestURI, std.RequestURI)
	case *ours.URL != *std.URL:
		return fmt.Errorf("URL %#v, stdlib %#v", *ours.URL, *std.URL)
	case ours.Host != std.Host:
		return fmt.Errorf("host %q, stdlib %q", ours.Host, std.Host)
	case ours.Close != std.Close:
		return fmt.Errorf("close %v, stdlib %v", ours.Close, std.Close)
	case std.ContentLength != 0 || len(std.TransferEncoding) > 0:
		return fmt.Errorf("stdlib framed a body: length %d, %v", std.ContentLength, std.TransferEncoding)
	case ours.Proto != std.Proto || ours.ProtoMajor != std.ProtoMajor || ours.ProtoMinor != std.ProtoMinor:
		return fmt.Errorf("proto %q, stdlib %q", ours.Proto, std.Proto)
	case fmt.Sprint(ours.Header) != fmt.Sprint(std.Header):
		return fmt.Errorf("header %v, stdlib %v", ours.Header, std.Header)
	}
	return nil
}

var requestHeadSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
	"HEAD /x/y?q=1&r=%41 HTTP/1.1\r\nHost: a.example:81\r\nUser-Agent: ua\r\nAccept: */*\r\n\r\n",
	"GET /a%2Fb/c%20d?x HTTP/1.1\r\nhost: [::1]:8\r\nx-lower: 1\r\nX-Multi: a\r\nX-Multi: b\r\nConnection: close\r\n\r\n",
	"GET /x? HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nCookie: b=2\r\nEmpty:\r\nSp:  v  \r\n\r\nGET / HTTP/1.1\r\n",
	"GET /!'()*%C3%A9 HTTP/1.1\r\nHost: a\r\nX: \x80\xff\r\n\r\n",
	// The smuggling shapes and odd heads: all net/http's to judge.
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
	"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /#f HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX\x01: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
	"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
}

// FuzzRequestHead is the differential proof of the server's own parser:
// the same bytes go to parseRequestHead and to a net/http server; whatever
// the parser accepts, the server must hand its handler the same request
// (method, target, URL, Host, fields, Connection: close, no body). What
// the parser does not accept goes to net/http on the real path, so it
// needs no agreement.
func FuzzRequestHead(f *testing.F) {
	for _, s := range requestHeadSeeds {
		f.Add([]byte(s))
	}
	sr := startStdlibReader(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		head := headOf(data)
		if head == nil || len(head) > 4096 {
			return
		}
		var r http.Request
		var u url.URL
		h := http.Header{}
		if _, ok := parseRequestHead(head, &r, &u, h, nil); !ok {
			return
		}
		std := sr.read(t, data)
		if std == nil {
			t.Fatalf("accepted %q; net/http refused it", head)
		}
		if err := sameRequest(&r, std); err != nil {
			t.Fatalf("%q: %v", head, err)
		}
	})
}

// TestRequestHeadSeeds: the seeds' verdicts, so that a change to the
// parser that stops taking plain requests (or starts taking a smuggling
// shape) shows without running the fuzzer.
func TestRequestHeadSeeds(t *testing.T) {
	sr := startStdlibReader(t)
	accepted := 0
	for i, s := range requestHeadSeeds {
		var r http.Request
		var u url.URL
		h := http.Header{}
		_, ok := parseRequestHead(headOf([]byte(s)), &r, &u, h, nil)
		if ok != (i < 5) {
			t.Errorf("%q: accepted %v, want %v", s, ok, i < 5)
			continue
		}
		if !ok {
			continue
		}
		accepted++
		std := sr.read(t, []byte(s))
		if std == nil {
			t.Fatalf("accepted %q; net/http refused it", s)
		}
		if err := sameRequest(&r, std); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if accepted != 5 {
		t.Fatalf("accepted %d seeds, want 5", accepted)
	}
}
