package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/testcert"
	"github.com/tetherproxy/tether/proxy"
)

func TestEdgeConfig(t *testing.T) {
	dir := t.TempDir()
	ca, err := testcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Write(dir, "def", []string{"example.com"}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Write(dir, "sni", []string{"a.example"}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	routes := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(routes, []byte("tls:\n  - {cert: sni.pem, key: sni.key}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(nil, baseEnv(), hostname, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Edge; e.TLSListen != "" || e.ProxyProtocol || e.AccessLog != "" || e.AccessFormat != "json" ||
		e.ClientPrefix != proxy.DefaultClientPrefix || e.HTTPSRedirect || e.TicketRotate != time.Hour || e.TicketKeep != 3 {
		t.Fatalf("defaults: %+v", e)
	}
	full := baseEnv()
	for k, v := range map[string]string{
		"TETHER_TLS_LISTEN": ":8443", "TETHER_TLS_CERT": cert, "TETHER_TLS_KEY": key, "TETHER_ROUTES_FILE": routes,
		"TETHER_TLS_MIN_VERSION": "1.3", "TETHER_HTTPS_REDIRECT": "true", "TETHER_PROXY_PROTOCOL": "on",
		"TETHER_TRUSTED_PROXIES": "10.0.0.0/8", "TETHER_ACCESS_LOG": "stdout", "TETHER_ACCESS_LOG_FORMAT": "combined",
		"TETHER_CLIENT_PREFIX": "24,56", "TETHER_TLS_TICKET_ROTATE": "15m", "TETHER_TLS_TICKET_KEEP": "5",
	} {
		full[k] = v
	}
	c, err = loadConfig(nil, full, hostname, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Edge; e.tlsPort() != "8443" || len(e.TLSSNI) != 1 || e.TLSSNI[0].Cert != filepath.Join(dir, "sni.pem") ||
		!e.ProxyProtocol || e.AccessLog != "stdout" || e.AccessFormat != "combined" || e.ClientPrefix != (proxy.ClientPrefix{V4: 24, V6: 56}) ||
		e.TicketRotate != 15*time.Minute || e.TicketKeep != 5 {
		t.Fatalf("parsed: %+v", e)
	}
	for _, tc := range []struct{ k, v, want string }{
		{"TETHER_TLS_MIN_VERSION", "1.1", "TETHER_TLS_MIN_VERSION"},
		{"TETHER_TLS_TICKET_ROTATE", "30s", "TETHER_TLS_TICKET_ROTATE"},
		{"TETHER_TLS_TICKET_ROTATE", "hourly", "TETHER_TLS_TICKET_ROTATE"},
		{"TETHER_TLS_TICKET_KEEP", "0", "TETHER_TLS_TICKET_KEEP"},
		{"TETHER_TLS_TICKET_KEEP", "17", "TETHER_TLS_TICKET_KEEP"},
		{"TETHER_TLS_KEY", cert, "TETHER_TLS_CERT"}, // a certificate is not a key
		{"TETHER_TLS_LISTEN", "8443", "TETHER_TLS_LISTEN"},
		{"TETHER_HTTPS_REDIRECT", "maybe", "TETHER_HTTPS_REDIRECT"},
		{"TETHER_PROXY_PROTOCOL", "v2", "TETHER_PROXY_PROTOCOL"},
		{"TETHER_TRUSTED_PROXIES", "", "TETHER_PROXY_PROTOCOL"},
		{"TETHER_ACCESS_LOG_FORMAT", "apache", "TETHER_ACCESS_LOG_FORMAT"},
		{"TETHER_CLIENT_PREFIX", "64", "TETHER_CLIENT_PREFIX"},
		{"TETHER_CLIENT_PREFIX", "33,64", "TETHER_CLIENT_PREFIX"},
		{"TETHER_ROUTES_FILE", writeFile(t, dir, "bad.yaml", "tls:\n  - {cert: nope.pem, key: nope.key}\n"), "TETHER_ROUTES_FILE"},
		{"TETHER_ROUTES_FILE", writeFile(t, dir, "typo.yaml", "tls:\n  - {cert: sni.pem, kye: sni.key}\n"), "TETHER_ROUTES_FILE"},
	} {
		env := map[string]string{}
		for k, v := range full {
			env[k] = v
		}
		env[tc.k] = tc.v
		_, err := loadConfig(nil, env, hostname, io.Discard)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: %v, want a config error naming %s", tc.k, tc.v, err, tc.want)
		}
	}
	noListen := baseEnv()
	noListen["TETHER_TLS_CERT"] = cert
	if _, err := loadConfig(nil, noListen, hostname, io.Discard); !errors.Is(err, ErrConfig) {
		t.Errorf("a certificate without TETHER_TLS_LISTEN: %v", err)
	}
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
