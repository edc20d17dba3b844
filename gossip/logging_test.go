package gossip

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestMemberlistLinesLimited: a flood of per-packet lines of one kind
// logs a handful and counts the rest; another kind still gets through.
func TestMemberlistLinesLimited(t *testing.T) {
	var out bytes.Buffer
	lim := &lineLimiter{}
	w := mlWriter{zerolog.New(&out), lim}
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(w, "[ERR] memberlist: Failed to decode ping request: msgpack decode error from=127.0.0.%d:%d\n", i%250, 4000+i)
	}
	fmt.Fprintln(w, "[WARN] memberlist: Got ping for unexpected node 'x' from=127.0.0.1:1")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != lineBurst+1 {
		t.Fatalf("%d lines logged, want %d:\n%s", len(lines), lineBurst+1, out.String())
	}
	if !strings.Contains(lines[len(lines)-1], "unexpected node") {
		t.Fatalf("another kind of line was suppressed: %s", lines[len(lines)-1])
	}
	if got := lim.Suppressed(); got != 1000-lineBurst {
		t.Fatalf("suppressed %d, want %d", got, 1000-lineBurst)
	}
}

func TestLineLimiterWindow(t *testing.T) {
	var l lineLimiter
	now := time.Unix(100, 0)
	for i := 0; i < lineBurst+7; i++ {
		l.allow("k", now)
	}
	ok, lost := l.allow("k", now.Add(lineInterval))
	if !ok || lost != 7 {
		t.Fatalf("next window: ok %v, lost %d; want true, 7", ok, lost)
	}
	for i := 0; i < 2*maxLineKinds; i++ {
		l.allow(fmt.Sprint(i), now)
	}
	if len(l.kinds) > maxLineKinds {
		t.Fatalf("%d kinds tracked", len(l.kinds))
	}
}
