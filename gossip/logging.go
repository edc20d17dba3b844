package gossip

import (
	"bytes"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// logLimits rate-limits the warnings that a misbehaving or flooding peer
// could otherwise turn into a log flood: the first few, then one per
// interval. Counters keep the exact numbers.
type logLimits struct {
	decode, reject, send, refuse, copy, persist, join rate.Sometimes
}

func (l *logLimits) init() {
	for _, s := range []*rate.Sometimes{&l.decode, &l.reject, &l.send, &l.refuse, &l.copy, &l.persist, &l.join} {
		s.First, s.Interval = 3, 10*time.Second
	}
}

// mlWriter turns memberlist's log lines ("[LEVEL] memberlist: ...") into
// zerolog events of the matching level.
type mlWriter struct{ log zerolog.Logger }

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
	w.log.WithLevel(lvl).Msg(string(line))
	return len(p), nil
}
