package proxy

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

// The routes file (TETHER_ROUTES_FILE) in YAML; README "Routes file" shows
// an example. Unknown fields are errors, so a typo does not pass silently.
type routesFile struct {
	Health *fileHealth `yaml:"health"`
	Pools  []filePool  `yaml:"pools"`
	// TLS is the TLS listener's SNI certificate list, read by edge.LoadSNI;
	// declared here so that the strict decoding accepts it (and its typos
	// fail).
	TLS []struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`
}

type filePool struct {
	Name     string        `yaml:"name"`
	Hosts    []string      `yaml:"hosts"`
	Health   *fileHealth   `yaml:"health"`
	Backends []fileBackend `yaml:"backends"`
}

type fileBackend struct {
	Name   string   `yaml:"name"`
	URL    string   `yaml:"url"`
	Weight *float64 `yaml:"weight"`
}

// fileHealth fields are pointers or strings so that "not given" (inherit)
// differs from a zero value.
type fileHealth struct {
	Path     *string `yaml:"path"`
	Interval string  `yaml:"interval"`
	Timeout  string  `yaml:"timeout"`
	Rise     *int    `yaml:"rise"`
	Fall     *int    `yaml:"fall"`
}

// LoadRoutes builds the routes from TETHER_BACKENDS (backends) and the
// routes file at path ("" for none) and validates them. See BuildRoutes.
func LoadRoutes(backends, path string) (Routes, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return Routes{}, fmt.Errorf("%w: routes file: %v", ErrInvalidRoutes, err)
		}
	}
	return BuildRoutes(backends, data)
}

// BuildRoutes combines TETHER_BACKENDS and the routes file's contents
// (nil for no file). The backends form the pool named DefaultPool; the
// file may name that pool too, to give it hosts or health settings, but
// then it must not also list backends for it.
func BuildRoutes(backends string, file []byte) (Routes, error) {
	bs, err := ParseBackends(backends)
	if err != nil {
		return Routes{}, err
	}
	var f routesFile
	if len(strings.TrimSpace(string(file))) > 0 {
		if err := decodeYAML(file, &f); err != nil {
			return Routes{}, fmt.Errorf("%w: routes file: %s", ErrInvalidRoutes, err)
		}
	}
	base := DefaultHealthCheck()
	if f.Health != nil {
		if base, err = f.Health.apply(base); err != nil {
			return Routes{}, invalid("routes file: health: %v", err)
		}
	}
	var r Routes
	haveDefault := false
	for i, fp := range f.Pools {
		p := Pool{Name: fp.Name, Health: base}
		where := fmt.Sprintf("routes file: pools[%d] (%s)", i, fp.Name)
		if fp.Health != nil {
			if p.Health, err = fp.Health.apply(base); err != nil {
				return Routes{}, invalid("%s.health: %v", where, err)
			}
		}
		for j, h := range fp.Hosts {
			n, ok := NormalizeHost(h)
			if !ok {
				return Routes{}, invalid("%s.hosts[%d] %q: not a valid host", where, j, h)
			}
			if hasPort(h) {
				return Routes{}, invalid("%s.hosts[%d] %q: no port allowed", where, j, h)
			}
			p.Hosts = append(p.Hosts, n)
		}
		for j, fb := range fp.Backends {
			b := Backend{Name: fb.Name, Weight: 1}
			if fb.Weight != nil {
				b.Weight = *fb.Weight
			}
			u, err := ParseBackendURL(fb.URL)
			if err != nil {
				return Routes{}, invalid("%s.backends[%d] (%s).url %q: %v", where, j, fb.Name, fb.URL, err)
			}
			b.URL = u
			p.Backends = append(p.Backends, b)
		}
		if fp.Name == DefaultPool {
			haveDefault = true
			if len(bs) > 0 {
				if len(p.Backends) > 0 {
					return Routes{}, invalid("%s: backends are given by TETHER_BACKENDS already; list them in one place", where)
				}
				p.Backends = bs
			}
		}
		r.Pools = append(r.Pools, p)
	}
	if !haveDefault && len(bs) > 0 {
		r.Pools = append(r.Pools, Pool{Name: DefaultPool, Backends: bs, Health: base})
	}
	if err := r.Validate(); err != nil {
		return Routes{}, err
	}
	return r, nil
}

func (fh *fileHealth) apply(h HealthCheck) (HealthCheck, error) {
	if fh.Path != nil {
		h.Path = *fh.Path
	}
	var err error
	if fh.Interval != "" {
		if h.Interval, err = time.ParseDuration(fh.Interval); err != nil {
			return h, fmt.Errorf("interval %q: not a duration (like 2s)", fh.Interval)
		}
	}
	if fh.Timeout != "" {
		if h.Timeout, err = time.ParseDuration(fh.Timeout); err != nil {
			return h, fmt.Errorf("timeout %q: not a duration (like 1s)", fh.Timeout)
		}
	}
	if fh.Rise != nil {
		h.Rise = *fh.Rise
	}
	if fh.Fall != nil {
		h.Fall = *fh.Fall
	}
	return h, h.validate()
}

// hasPort reports whether a host as written carries a port ("a:80",
// "[::1]:80"); routes name hosts without one.
func hasPort(h string) bool {
	if strings.HasPrefix(h, "[") {
		i := strings.IndexByte(h, ']')
		return i >= 0 && strings.Contains(h[i+1:], ":")
	}
	return strings.Contains(h, ":")
}

// decodeYAML decodes strictly, and turns a panic of the YAML library into
// an error: goccy/go-yaml v1.19.2 dereferences nil on some malformed input
// (a tag on a block sequence, found by FuzzRoutes), and a bad file sent
// with SIGHUP must not bring the node down.
func decodeYAML(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed YAML (parser failed: %v)", r)
		}
	}()
	if err := yaml.UnmarshalWithOptions(data, v, yaml.DisallowUnknownField()); err != nil {
		return errors.New(yaml.FormatError(err, false, true))
	}
	return nil
}
