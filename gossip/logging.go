package gossip

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// logLimits rate-limits the warnings that a misbehaving or flooding peer
// could otherwise turn into a log flood: the first few, then one per
// interval. Counters keep the exact numbers.
type logLimits struct {
	decode, reject, send, refuse, copy, persist, join rate.Sometimes
	ml                                                lineLimiter // memberlist's own lines
}

func (l *logLimits) init() {
	for _, s := range []*rate.Sometimes{&l.decode, &l.reject, &l.send, &l.refuse, &l.copy, &l.persist, &l.join} {
		s.First, s.Interval = 3, 10*time.Second
	}
}

// mlWriter turns memberlist's log lines ("[LEVEL] memberlist: ...") into
// zerolog events of the matching level. Memberlist logs once per bad
// packet or connection (a garbage UDP datagram, a failed decrypt), which a
// stranger can send by the hundred thousand, so lines go through lim:
// per kind of message, the first few of each interval, then a count.
type mlWriter struct {
	log zerolog.Logger
	lim *lineLimiter
}

func (w mlWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	lvl := zerolog.InfoLevel
	for _, m := range []struct {
		tag string
		lvl zerolog.Level
	}{
		{"[DEBUG]", zerolog.DebugLevel}, {"[INFO]", zerolog.InfoLevel},
		{"[WARN]", zerolog.WarnLevel}, {"[ERR]", zerolog.ErrorLevel}, {"[ERROR]", zerolog.ErrorLevel},
	} {
		if bytes.HasPrefix(line, []byte(m.tag)) {
			lvl = m.lvl
			line = bytes.TrimSpace(line[len(m.tag):])
			break
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	if lvl == zerolog.WarnLevel && bytes.HasPrefix(line, []byte("Refuting a dead message")) {
		// A node restarted under its name refutes the fleet's memory of its
		// death: routine, not trouble.
		lvl = zerolog.DebugLevel
	}
	if lvl < w.log.GetLevel() || lvl < zerolog.GlobalLevel() {
		return len(p), nil
	}
	suppressed := 0
	if w.lim != nil {
		var ok bool
		if ok, suppressed = w.lim.allow(lineKind(line), time.Now()); !ok {
			return len(p), nil
		}
	}
	e := w.log.WithLevel(lvl)
	if suppressed > 0 {
		e = e.Int("suppressed_before", suppressed)
	}
	e.Msg(string(line))
	return len(p), nil
}

// lineKind is the part of a memberlist line that names what happened,
// before the details that vary per packet (addresses, error text).
func lineKind(line []byte) string {
	if i := bytes.IndexAny(line, ":="); i > 0 {
		line = line[:i]
	}
	if len(line) > 48 {
		line = line[:48]
	}
	return string(line)
}

// lineLimiter lets through, per kind, the first lineBurst lines of every
// lineInterval and counts the rest (Suppressed; the next line let through
// says how many of its kind were left out).
type lineLimiter struct {
	mu         sync.Mutex
	kinds      map[string]*lineKindState
	suppressed atomic.Uint64
}

type lineKindState struct {
	start   time.Time
	n, lost int
}

const (
	lineBurst    = 5
	lineInterval = 10 * time.Second
	maxLineKinds = 256
)

func (l *lineLimiter) allow(kind string, now time.Time) (ok bool, lostBefore int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kinds == nil || len(l.kinds) >= maxLineKinds {
		l.kinds = map[string]*lineKindState{}
	}
	st := l.kinds[kind]
	if st == nil {
		st = &lineKindState{start: now}
		l.kinds[kind] = st
	}
	if now.Sub(st.start) >= lineInterval {
		st.start, st.n = now, 0
	}
	if st.n >= lineBurst {
		st.lost++
		l.suppressed.Add(1)
		return false, 0
	}
	st.n++
	lostBefore, st.lost = st.lost, 0
	return true, lostBefore
}

// Suppressed is the number of lines left out so far.
func (l *lineLimiter) Suppressed() uint64 { return l.suppressed.Load() }
