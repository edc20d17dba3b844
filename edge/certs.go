package edge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// ErrCert marks a certificate/key pair that cannot be used.
var ErrCert = errors.New("edge: bad certificate")

// Pair names a PEM certificate file (leaf first, chain allowed) and its
// PEM private key file.
type Pair struct {
	Cert string `yaml:"cert" json:"cert"`
	Key  string `yaml:"key" json:"key"`
}

// CertInfo describes one loaded certificate, for the admin overview.
type CertInfo struct {
	Cert     string    `json:"cert"` // file
	Names    []string  `json:"names"`
	NotAfter time.Time `json:"not_after"`
	Default  bool      `json:"default"`
	// Error is why the files on disk were refused at the last reload
	// ("" when they are what is served).
	Error string `json:"error,omitempty"`
}

// ExpiryWarning is how long before expiry a certificate is warned about.
const ExpiryWarning = 14 * 24 * time.Hour

// loaded is one usable pair.
type loaded struct {
	pair     Pair
	cert     *tls.Certificate
	names    []string // lower-case DNS SANs (or the CN when there are none)
	notAfter time.Time
	stamp    fileStamp // of cert and key at load
	err      string    // last refusal of newer files, "" if none
}

// certSet is what handshakes read, swapped whole on reload.
type certSet struct {
	def   *loaded
	sni   []*loaded
	exact map[string]*loaded // name -> pair
	wild  map[string]*loaded // "example.com" for *.example.com
}

// Certs holds the certificates the TLS listener serves and reloads them.
// Handshakes read it without a lock (GetCertificate); Reload and Poll
// swap in a new set. A pair that fails to load keeps the pair in force.
type Certs struct {
	log zerolog.Logger
	now func() time.Time
	cur atomic.Pointer[certSet]

	mu       sync.Mutex // serialises reloads
	failures prometheus.Counter
}

// NewCerts loads the default pair and the SNI pairs. Every pair must load:
// a bad file at start is a configuration error. log may be nil.
func NewCerts(def Pair, sni []Pair, log *zerolog.Logger) (*Certs, error) {
	c := &Certs{log: zerolog.Nop(), now: time.Now,
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tether_tls_cert_reload_failures_total",
			Help: "Certificate/key pairs refused at a reload (the pair in force stays).",
		})}
	if log != nil {
		c.log = *log
	}
	set := &certSet{}
	var err error
	if set.def, err = loadPair(def); err != nil {
		return nil, err
	}
	for _, p := range sni {
		l, err := loadPair(p)
		if err != nil {
			return nil, err
		}
		set.sni = append(set.sni, l)
	}
	set.index()
	c.cur.Store(set)
	c.warnExpiring()
	return c, nil
}

// CheckPair loads a pair once, for configuration checks.
func CheckPair(p Pair) error {
	_, err := loadPair(p)
	return err
}

func loadPair(p Pair) (*loaded, error) {
	st, err := stampOf(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCert, err)
	}
	c, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %s / %s: %v", ErrCert, p.Cert, p.Key, err)
	}
	leaf := c.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCert, p.Cert, err)
		}
		c.Leaf = leaf
	}
	l := &loaded{pair: p, cert: &c, notAfter: leaf.NotAfter, stamp: st}
	for _, n := range leaf.DNSNames {
		l.names = append(l.names, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	if len(l.names) == 0 && leaf.Subject.CommonName != "" {
		l.names = []string{strings.ToLower(leaf.Subject.CommonName)}
	}
	return l, nil
}

// index builds the name maps; the first pair naming a name wins, exact
// names before wildcards.
func (s *certSet) index() {
	s.exact, s.wild = map[string]*loaded{}, map[string]*loaded{}
	for _, l := range s.sni {
		for _, n := range l.names {
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				if _, dup := s.wild[rest]; !dup {
					s.wild[rest] = l
				}
			} else if _, dup := s.exact[n]; !dup {
				s.exact[n] = l
			}
		}
	}
}

// pick chooses the certificate for a server name: an exact SAN of an SNI
// pair, else a wildcard SAN (one label), else the default pair.
func (s *certSet) pick(name string) *loaded {
	if name != "" {
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		if l, ok := s.exact[name]; ok {
			return l
		}
		if _, rest, ok := strings.Cut(name, "."); ok {
			if l, ok := s.wild[rest]; ok {
				return l
			}
		}
	}
	return s.def
}

// GetCertificate is tls.Config.GetCertificate. It never fails: a client
// without SNI or with an unknown name gets the default certificate.
func (c *Certs) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load().pick(h.ServerName).cert, nil
}

// Reload re-reads every pair whose files changed (def and sni replace the
// lists, e.g. after the routes file changed). A pair that fails keeps the
// certificate it replaces in force (a new SNI pair that fails is left out)
// and the failure is logged and counted; the returned error joins them.
func (c *Certs) Reload(def Pair, sni []Pair) error {
	return c.reload(def, sni, true)
}

// Poll reloads the pairs whose files changed on disk (mtime or size),
// keeping the lists. Cheap: two stats per pair.
func (c *Certs) Poll() error {
	s := c.cur.Load()
	sni := make([]Pair, len(s.sni))
	for i, l := range s.sni {
		sni[i] = l.pair
	}
	return c.reload(s.def.pair, sni, false)
}

func (c *Certs) reload(def Pair, sni []Pair, force bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cur.Load()
	byPair := map[Pair]*loaded{old.def.pair: old.def}
	for _, l := range old.sni {
		byPair[l.pair] = l
	}
	var errs []error
	changed := false
	next := func(p Pair) *loaded {
		prev := byPair[p]
		st, statErr := stampOf(p)
		if prev != nil && statErr == nil && st == prev.stamp && (!force || prev.err == "") {
			return prev // unchanged since the last attempt
		}
		l, err := loadPair(p)
		if err == nil {
			changed = true
			c.log.Info().Str("cert", p.Cert).Strs("names", l.names).Time("not_after", l.notAfter).Msg("certificate loaded")
			return l
		}
		errs = append(errs, err)
		if prev == nil || prev.err != err.Error() { // once per distinct failure, not every poll
			c.failures.Inc()
			c.log.Error().Err(err).Str("cert", p.Cert).Msg("certificate refused; the one in force stays")
		}
		if prev == nil {
			return nil
		}
		kept := *prev
		kept.err = err.Error()
		if statErr == nil {
			kept.stamp = st // retry when the files change again
		}
		changed = true
		return &kept
	}
	set := &certSet{def: next(def)}
	if set.def == nil { // only when the default pair is new and broken
		set.def = old.def
	}
	for _, p := range sni {
		if l := next(p); l != nil {
			set.sni = append(set.sni, l)
		}
	}
	if len(set.sni) != len(old.sni) || set.def.pair != old.def.pair {
		changed = true
	}
	if changed {
		set.index()
		c.cur.Store(set)
		c.warnExpiring()
	}
	return errors.Join(errs...)
}

// Status lists the certificates in force, the default first.
func (c *Certs) Status() []CertInfo {
	s := c.cur.Load()
	info := func(l *loaded, def bool) CertInfo {
		return CertInfo{Cert: l.pair.Cert, Names: append([]string(nil), l.names...), NotAfter: l.notAfter, Default: def, Error: l.err}
	}
	out := []CertInfo{info(s.def, true)}
	for _, l := range s.sni {
		out = append(out, info(l, false))
	}
	return out
}

// warnExpiring logs a warning for each certificate within ExpiryWarning
// of its expiry (and an error for an expired one).
func (c *Certs) warnExpiring() {
	now := c.now()
	for _, ci := range c.Status() {
		left := ci.NotAfter.Sub(now)
		switch {
		case left <= 0:
			c.log.Error().Str("cert", ci.Cert).Strs("names", ci.Names).Time("not_after", ci.NotAfter).Msg("certificate expired")
		case left < ExpiryWarning:
			c.log.Warn().Str("cert", ci.Cert).Strs("names", ci.Names).Time("not_after", ci.NotAfter).
				Str("left", left.Round(time.Minute).String()).Msg("certificate expires soon")
		}
	}
}

// Describe and Collect make Certs a prometheus.Collector:
// tether_tls_cert_expiry_seconds{name} is the time left until each
// certificate's NotAfter (negative once expired), computed at scrape; name
// is the certificate's first name (its file when it names nothing).
func (c *Certs) Describe(ch chan<- *prometheus.Desc) {
	ch <- expiryDesc
	c.failures.Describe(ch)
}

var expiryDesc = prometheus.NewDesc("tether_tls_cert_expiry_seconds",
	"Seconds until the certificate expires (negative once expired).", []string{"name"}, nil)

// Collect: see Describe.
func (c *Certs) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	seen := map[string]bool{}
	st := c.Status()
	sort.SliceStable(st, func(i, j int) bool { return st[i].Default && !st[j].Default })
	for _, ci := range st {
		name := ci.Cert
		if len(ci.Names) > 0 {
			name = ci.Names[0]
		}
		if seen[name] {
			continue // two pairs for one name: the first (as served) is reported
		}
		seen[name] = true
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, ci.NotAfter.Sub(now).Seconds(), name)
	}
	c.failures.Collect(ch)
}

// fileStamp tells whether a pair's files changed since they were read.
type fileStamp struct {
	certMod, keyMod   int64
	certSize, keySize int64
	// The inodes: a file replaced by rename (as tools write certificates)
	// within one tick of the file system's clock keeps mtime and size.
	certIno, keyIno uint64
}

func stampOf(p Pair) (fileStamp, error) {
	cs, err := os.Stat(p.Cert)
	if err != nil {
		return fileStamp{}, err
	}
	ks, err := os.Stat(p.Key)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{cs.ModTime().UnixNano(), ks.ModTime().UnixNano(), cs.Size(), ks.Size(), inode(cs), inode(ks)}, nil
}
