package proxy

import (
	"net/netip"

	"bufio"
	"github.com/tetherproxy/tether/stickydb"
	"io"
	"net"
	"net/http"
	"strings"
)

func stringsReader(s string) io.Reader     { return strings.NewReader(s) }
func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
func readAll(res *http.Response) string {
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func mkKey(ip, host string) (stickydb.Key, error) {
	return stickydb.NewKey(netip.MustParseAddr(ip), host)
}
