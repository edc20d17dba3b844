package edge

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goccy/go-yaml"
)

// LoadSNI reads the `tls:` list of the routes file at path ("" for none):
//
//	tls:
//	  - cert: /etc/tether/example.com.pem
//	    key: /etc/tether/example.com.key
//
// Relative paths are taken from the routes file's directory. The other
// keys of the file belong to the proxy (proxy.LoadRoutes).
func LoadSNI(path string) (pairs []Pair, err error) {
	defer func() { // goccy/go-yaml panics on some malformed input
		if e := recover(); e != nil {
			pairs, err = nil, fmt.Errorf("routes file: malformed YAML (%v)", e)
		}
	}()
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("routes file: %w", err)
	}
	var f struct {
		TLS []Pair `yaml:"tls"`
	}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := yaml.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("routes file: %w", err)
		}
	}
	dir := filepath.Dir(path)
	for i, p := range f.TLS {
		if p.Cert == "" || p.Key == "" {
			return nil, fmt.Errorf("routes file: tls[%d]: want both cert and key", i)
		}
		if !filepath.IsAbs(p.Cert) {
			f.TLS[i].Cert = filepath.Join(dir, p.Cert)
		}
		if !filepath.IsAbs(p.Key) {
			f.TLS[i].Key = filepath.Join(dir, p.Key)
		}
	}
	return f.TLS, nil
}
