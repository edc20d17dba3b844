package proxy

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"
)

// DefaultPool is the name of the pool that serves every Host no other pool
// lists. TETHER_BACKENDS fills it.
const DefaultPool = "default"

// ErrInvalidRoutes: a routes value (TETHER_BACKENDS, the routes file or a
// Routes given to New or Reload) that cannot be served. The wrapped message
// names the field and the bad value.
var ErrInvalidRoutes = errors.New("proxy: invalid routes")

// Routes is the proxy's configuration of where requests go: pools of
// replicas, each serving some Hosts. It is a plain value; New and Reload
// copy what they keep.
type Routes struct {
	// Pools in the order they were given. A pool named DefaultPool serves
	// every Host that no pool lists; without one, such Hosts get 404.
	Pools []Pool
}

// Pool is a group of interchangeable replicas of one application.
type Pool struct {
	// Name identifies the pool in the admin API, metrics and logs.
	// Letters, digits, '.', '_' and '-', at most 64 bytes.
	Name string
	// Hosts served by this pool, normalised (see NormalizeHost), no port.
	// A Host may belong to one pool only.
	Hosts []string
	// Backends are the replicas. Names are unique within the pool: a
	// binding names its replica, so renaming a replica moves its clients.
	Backends []Backend
	// Health says how replicas are checked.
	Health HealthCheck
}

// Backend is one replica.
type Backend struct {
	// Name is what bindings record. Same character set as Pool.Name.
	Name string
	// URL is where requests go: http or https, host and port, optionally a
	// path prefix; no query or fragment.
	URL *url.URL
	// Weight scales the replica's share of new clients (rendezvous
	// hashing): 2 gets twice the clients of 1. > 0; default 1.
	Weight float64
}

// HealthCheck configures the active checks of a pool's replicas. A replica
// is also marked down at once when a connection to it fails (passive check);
// only active checks bring it back.
type HealthCheck struct {
	// Path is requested with GET; any 2xx or 3xx passes. "" checks only
	// that a TCP connection opens. Default "": an app need not have a
	// health endpoint for tether to front it (HAProxy's `check` does the
	// same); set a path in the routes file for an HTTP check.
	Path string
	// Interval between two checks of one replica. Default 2s.
	Interval time.Duration
	// Timeout of one check. Default 1s. It may exceed Interval: the next
	// check then starts as soon as the slow one ends.
	Timeout time.Duration
	// Rise is the number of passed checks in a row that mark a down replica
	// up; Fall the number of failed checks in a row that mark an up replica
	// down. Defaults 2 and 3.
	Rise, Fall int
}

// DefaultHealthCheck returns the defaults documented on HealthCheck.
func DefaultHealthCheck() HealthCheck {
	return HealthCheck{Path: "", Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidRoutes}, args...)...)
}

// ParseBackends reads TETHER_BACKENDS: `name=url,name=url`. Spaces around
// items are ignored; an empty spec gives no backends.
func ParseBackends(spec string) ([]Backend, error) {
	var out []Backend
	seen := map[string]bool{}
	for i, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			if strings.TrimSpace(spec) == "" {
				break
			}
			return nil, invalid("item %d is empty", i+1)
		}
		name, raw, ok := strings.Cut(item, "=")
		if !ok {
			return nil, invalid("item %q: want name=url", item)
		}
		name, raw = strings.TrimSpace(name), strings.TrimSpace(raw)
		if err := checkName(name); err != nil {
			return nil, invalid("backend name %q: %v", name, err)
		}
		if seen[name] {
			return nil, invalid("duplicate backend name %q", name)
		}
		seen[name] = true
		u, err := ParseBackendURL(raw)
		if err != nil {
			return nil, invalid("backend %q: url %q: %v", name, raw, err)
		}
		out = append(out, Backend{Name: name, URL: u, Weight: 1})
	}
	return out, nil
}

// ParseBackendURL checks a replica's URL: absolute http(s) with a host, no
// user info, query or fragment.
func ParseBackendURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("no host")
	case u.User != nil:
		return nil, errors.New("user info not allowed")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, errors.New("query or fragment not allowed")
	}
	if p := u.Port(); p != "" && (!validPort(p) || p == "0") {
		return nil, errors.New("bad port")
	}
	return u, nil
}

func checkName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 64 {
		return errors.New("longer than 64 bytes")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("character %q not allowed (letters, digits, '.', '_', '-')", c)
		}
	}
	return nil
}

// Validate checks routes as New and Reload need them: at least one pool,
// unique pool names, each pool with at least one backend, unique backend
// names in a pool, valid URLs and weights, each Host normalised and in one
// pool only, sane health settings. The error wraps ErrInvalidRoutes and
// names the field.
func (r Routes) Validate() error {
	if len(r.Pools) == 0 {
		return invalid("no pools: set TETHER_BACKENDS or a routes file")
	}
	pools := map[string]bool{}
	hosts := map[string]string{}
	for i, p := range r.Pools {
		where := fmt.Sprintf("pools[%d] (%s)", i, p.Name)
		if err := checkName(p.Name); err != nil {
			return invalid("pools[%d].name %q: %v", i, p.Name, err)
		}
		if pools[p.Name] {
			return invalid("duplicate pool name %q", p.Name)
		}
		pools[p.Name] = true
		if len(p.Hosts) == 0 && p.Name != DefaultPool {
			return invalid("%s: no hosts (only the %q pool may have none)", where, DefaultPool)
		}
		for j, h := range p.Hosts {
			n, ok := NormalizeHost(h)
			if !ok || n != h {
				return invalid("%s.hosts[%d] %q: not a normalised host (lower case, no port)", where, j, h)
			}
			if other, dup := hosts[h]; dup {
				return invalid("%s.hosts[%d] %q: already in pool %q", where, j, h, other)
			}
			hosts[h] = p.Name
		}
		if len(p.Backends) == 0 {
			return invalid("%s: no backends", where)
		}
		names := map[string]bool{}
		for j, b := range p.Backends {
			bw := fmt.Sprintf("%s.backends[%d]", where, j)
			if err := checkName(b.Name); err != nil {
				return invalid("%s.name %q: %v", bw, b.Name, err)
			}
			if names[b.Name] {
				return invalid("%s: duplicate backend name %q", where, b.Name)
			}
			names[b.Name] = true
			if b.URL == nil {
				return invalid("%s (%s).url: missing", bw, b.Name)
			}
			if _, err := ParseBackendURL(b.URL.String()); err != nil {
				return invalid("%s (%s).url %q: %v", bw, b.Name, b.URL.String(), err)
			}
			if !(b.Weight > 0) || math.IsInf(b.Weight, 0) || b.Weight > 1e6 {
				return invalid("%s (%s).weight %v: must be > 0 and <= 1e6", bw, b.Name, b.Weight)
			}
		}
		if err := p.Health.validate(); err != nil {
			return invalid("%s.health: %v", where, err)
		}
	}
	return nil
}

func (h HealthCheck) validate() error {
	switch {
	case h.Path != "" && !strings.HasPrefix(h.Path, "/"):
		return fmt.Errorf("path %q: must start with /", h.Path)
	case h.Interval <= 0:
		return fmt.Errorf("interval %v: must be > 0", h.Interval)
	case h.Timeout <= 0:
		return fmt.Errorf("timeout %v: must be > 0", h.Timeout)
	case h.Rise < 1 || h.Rise > 100:
		return fmt.Errorf("rise %d: must be 1..100", h.Rise)
	case h.Fall < 1 || h.Fall > 100:
		return fmt.Errorf("fall %d: must be 1..100", h.Fall)
	}
	return nil
}

// clone deep-copies r, so that a caller changing its slices later does not
// change the proxy's routes.
func (r Routes) clone() Routes {
	out := Routes{Pools: make([]Pool, len(r.Pools))}
	for i, p := range r.Pools {
		p.Hosts = append([]string(nil), p.Hosts...)
		bs := make([]Backend, len(p.Backends))
		for j, b := range p.Backends {
			if b.URL != nil {
				u := *b.URL
				b.URL = &u
			}
			bs[j] = b
		}
		p.Backends = bs
		out.Pools[i] = p
	}
	return out
}
