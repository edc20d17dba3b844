package gossip

import (
	"fmt"

	"github.com/tetherproxy/tether/stickydb"
)

func wireErr(err error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", err, fmt.Sprintf(format, args...))
}

const flagFull = 1

// requestMsg is a decoded msgRequest.
type requestMsg struct {
	Sender string
	Req    stickydb.Request // To is left empty: it is us
}

// encodeRequest encodes a request (msgRequest) from sender.
func encodeRequest(sender string, req *stickydb.Request) []byte {
	w := getWriter(msgRequest)
	defer putWriter(w)
	w.str(sender)
	for _, o := range req.Origins {
		w.names.add(o)
	}
	w.collectVector(req.Known)
	w.tables()
	var flags uint64
	if req.Full {
		flags |= flagFull
	}
	w.uint(flags)
	w.uint(uint64(req.Reason)) // stickydb.Reason: numbered, only appended
	if req.Origins == nil {
		w.nil()
	} else {
		w.uint(uint64(len(req.Origins)))
		for _, o := range req.Origins {
			w.uint(w.names.id(o))
		}
	}
	w.vector(req.Known)
	return w.bytes()
}

func decodeRequest(body []byte, caps *Caps) (requestMsg, error) {
	r := newReader(body, caps)
	defer r.release()
	var m requestMsg
	m.Sender = r.str(maxNameLen, "sender")
	r.tables()
	flags := r.uint(0xff, "flags")
	reason := r.uint(0xff, "reason")
	m.Req.Full = flags&flagFull != 0
	if r := stickydb.Reason(reason); reason <= 255 && r.Known() {
		m.Req.Reason = r // one a newer peer added stays ReasonNone
	}
	if !r.isNil() {
		n := r.count(caps.MaxOrigins, 1, "origins")
		if r.err == nil {
			m.Req.Origins = make([]string, n)
			for i := range m.Req.Origins {
				m.Req.Origins[i] = r.name("origin")
			}
		}
	}
	m.Req.Known = r.vector("known")
	r.end()
	if r.err != nil {
		return requestMsg{}, r.err
	}
	return m, nil
}
