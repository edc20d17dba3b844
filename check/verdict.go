package check

import (
	"sync"
	"time"
)

// maxExamples is how many violations a report shows in full.
const maxExamples = 10

// switchRec is one switch: client moved from one replica to another; the
// response that showed it arrived at offset at from the run's start.
type switchRec struct {
	client   int32
	from, to *replica
	at       time.Duration
}

// switchLog keeps switches for judging when the run ends, up to a cap.
type switchLog struct {
	mu      sync.Mutex
	cap     int
	recs    []switchRec
	dropped uint64
}

func (l *switchLog) add(r switchRec) {
	l.mu.Lock()
	if len(l.recs) < l.cap {
		l.recs = append(l.recs, r)
	} else {
		l.dropped++
	}
	l.mu.Unlock()
}

// judgement is the stickiness part of a report, before names are filled in.
type judgement struct {
	violations uint64
	clients    map[int32]bool // clients that suffered a violation
	examples   []switchRec
}

// judge decides every switch (see the package doc): a violation when the
// replica left served a request sent in a slot strictly after the switch's
// slot and within window of it.
func judge(recs []switchRec, clock slotClock, window time.Duration) judgement {
	j := judgement{clients: map[int32]bool{}}
	for _, r := range recs {
		s := clock.slot(r.at)
		if !r.from.upIn(s+1, clock.slot(r.at+window)) {
			continue
		}
		j.violations++
		j.clients[r.client] = true
		if len(j.examples) < maxExamples {
			j.examples = append(j.examples, r)
		}
	}
	return j
}
