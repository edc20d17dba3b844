package stickydb

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Query selects bindings for the admin page and API. Zero fields match all.
type Query struct {
	Client  netip.Prefix // a client address or prefix (a single address is a /32 or /128)
	Host    string       // exact, lower case
	Replica string       // bound replica
	// Deleted includes tombstones.
	Deleted bool
	// Cursor continues a previous page (Page.Next); "" starts at the top.
	Cursor string
	// Limit is the page size; 0 means 100, and at most 10,000.
	Limit int
}

// Row is one binding as the admin sees it.
type Row struct {
	Key
	Binding
	LocalExpiry int64 // serve-until on this node, unix ms
}

// Page is one page of a Find.
type Page struct {
	Rows    []Row
	Next    string // cursor of the next page; "" when this is the last
	Scanned int    // entries looked at, for the curious
}

// Find pages through the bindings that match q, live at now. Pages follow
// the shards in order, and keys in byte order within a shard, so a cursor
// stays valid while the table changes (a binding made meanwhile may or may
// not show up, as in any paged listing of live data). Only the shards from
// the cursor on are visited, and each shard's lock is held only while its
// matches are copied.
func (db *DB) Find(q Query, now time.Time) (Page, error) {
	nowMs := now.UnixMilli()
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 10_000)
	shard, after, err := parseCursor(q.Cursor, len(db.shards))
	if err != nil {
		return Page{}, err
	}
	if q.Client.IsValid() {
		q.Client = netip.PrefixFrom(q.Client.Addr().Unmap(), q.Client.Bits()-unmapBits(q.Client)).Masked()
	}
	var page Page
	var buf []Row
	for ; shard < len(db.shards); shard++ {
		s := &db.shards[shard]
		buf = buf[:0]
		s.mu.Lock()
		page.Scanned += len(s.m)
		host := uint32(0) // q.Host's id here; 0: any host, or none here
		if q.Host != "" {
			host = s.hostID(q.Host)
		}
		for tk, e := range s.m {
			if q.Host != "" && host == 0 {
				break // no key of that host here
			}
			if e.expiry() <= nowMs || (e.deleted() && !q.Deleted) || (host != 0 && tk.host != host) {
				continue
			}
			if q.Replica != "" && db.names.name(e.replica) != q.Replica {
				continue
			}
			if q.Client.IsValid() && !q.Client.Contains(netip.AddrFrom16(tk.ip).Unmap()) {
				continue
			}
			k := s.key(tk)
			if after != nil && keyCompare(k, *after) <= 0 {
				continue
			}
			buf = append(buf, Row{Key: k, Binding: db.binding(e), LocalExpiry: e.expiry()})
		}
		s.mu.Unlock()
		after = nil
		slices.SortFunc(buf, func(a, b Row) int { return keyCompare(a.Key, b.Key) })
		room := limit - len(page.Rows)
		if len(buf) > room {
			page.Rows = append(page.Rows, buf[:room]...)
			page.Next = makeCursor(shard, page.Rows[len(page.Rows)-1].Key)
			return page, nil
		}
		page.Rows = append(page.Rows, buf...)
		if len(page.Rows) == limit && shard+1 < len(db.shards) {
			page.Next = makeCursor(shard, page.Rows[len(page.Rows)-1].Key)
			return page, nil
		}
	}
	return page, nil
}

// unmapBits is 96 when p is an IPv4-mapped prefix, so it folds to IPv4.
func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return 96
	}
	return 0
}

func keyCompare(a, b Key) int {
	if c := strings.Compare(string(a.ip[:]), string(b.ip[:])); c != 0 {
		return c
	}
	return strings.Compare(a.host, b.host)
}

// A cursor is "shard/client/host" of the last row shown.
func makeCursor(shard int, k Key) string {
	return strconv.Itoa(shard) + "/" + k.Client().String() + "/" + k.host
}

func parseCursor(c string, shards int) (int, *Key, error) {
	if c == "" {
		return 0, nil, nil
	}
	parts := strings.SplitN(c, "/", 3)
	if len(parts) != 3 {
		return 0, nil, ErrInvalidKey
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 0 || n >= shards {
		return 0, nil, ErrInvalidKey
	}
	ip, err := netip.ParseAddr(parts[1])
	if err != nil {
		return 0, nil, ErrInvalidKey
	}
	k, err := NewKey(ip, parts[2])
	if err != nil {
		return 0, nil, err
	}
	return n, &k, nil
}

// Digest summarises the live database as the fleet knows it: the count of
// live bindings (tombstones included) and an order-independent hash of
// (key, replica, generation, announced expiry, origin, deleted). Two nodes
// with equal digests hold the same replicated state. Entries within
// `margin` of expiry are left out, so nodes compared a moment apart agree.
func (db *DB) Digest(now time.Time, margin time.Duration) (count int, sum uint64) {
	limit := now.Add(margin).UnixMilli()
	var b [8]byte
	for i := range db.shards {
		s := &db.shards[i]
		s.mu.Lock()
		for tk, e := range s.m {
			if e.announced()+db.refreshMs <= limit {
				continue
			}
			h := s.key(tk).Hash()
			h = mix64(h ^ db.names.info(e.replica).hash) // not the origin: see Merge
			binary.LittleEndian.PutUint64(b[:], uint64(e.ann))
			h = mix64(h ^ binary.LittleEndian.Uint64(b[:]) ^ uint64(e.gen)<<1)
			if e.deleted() {
				h = mix64(h ^ 0x9e3779b97f4a7c15)
			}
			sum += h
			count++
		}
		s.mu.Unlock()
	}
	return count, sum
}

// CountLive counts the bindings to replica that this node serves at now:
// not deleted, and within their local expiry (extended by hits here, so a
// node that served a client later than the fleet was told counts it while
// the others no longer do).
func (db *DB) CountLive(replica string, now time.Time) int {
	nowMs := now.UnixMilli()
	c := 0
	for i := range db.shards {
		s := &db.shards[i]
		s.mu.Lock()
		for _, e := range s.m {
			if !e.deleted() && e.expiry() > nowMs && db.names.name(e.replica) == replica {
				c++
			}
		}
		s.mu.Unlock()
	}
	return c
}
