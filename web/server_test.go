package web

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tetherproxy/tether/internal/syncbuf"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartServeShutdown(t *testing.T) {
	f := newFixture(t)
	s := f.server(t, func(c *Config) { c.Listen = "127.0.0.1:0"; c.Token = testToken; c.Now = nil })
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Error("second Start accepted")
	}
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path, token string) (int, string) {
		rq, _ := http.NewRequest("GET", s.URL()+path, nil)
		if token != "" {
			rq.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz", ""); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("healthz %d %s", code, body)
	}
	if resp, err := client.Head(s.URL() + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("HEAD /healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if code, _ := get("/api/v1/members", ""); code != 401 {
		t.Errorf("members without token %d", code)
	}
	if code, body := get("/api/v1/members", testToken); code != 200 || !strings.Contains(body, `"suspect"`) {
		t.Errorf("members %d %s", code, body)
	}
	f.ready = false
	if code, body := get("/readyz", ""); code != 503 || !strings.Contains(body, `"why": "catching up"`) {
		t.Errorf("readyz while not ready: %d %s", code, body)
	}
	if code, body := get("/readyz", ""); strings.Contains(body, "behind") {
		t.Errorf("the open readyz names peers: %d %s", code, body)
	}
	if code, body := get("/api/v1/node", testToken); code != 200 || !strings.Contains(body, `"behind": "c epoch 1: 0 of 3 events`) {
		t.Errorf("node while catching up: %d %s", code, body)
	}
	f.ready = true
	if code, body := get("/readyz", ""); code != 200 || !strings.Contains(body, `"why": "caught up"`) {
		t.Errorf("readyz: %d %s", code, body)
	}
	if code, body := get("/api/v1/node", testToken); code != 200 || strings.Contains(body, "behind") {
		t.Errorf("node once ready: %d %s", code, body)
	}
	client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

func TestStartRefusesNonLoopbackWithoutToken(t *testing.T) {
	f := newFixture(t)
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		t.Run(listen, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Listen = listen
			_, err := New(cfg, f.sources())
			if !errors.Is(err, ErrNoToken) {
				t.Fatalf("err %v, want ErrNoToken", err)
			}
		})
	}
	t.Run("bound address is checked again", func(t *testing.T) {
		// A config that passed validation but binds a non-loopback address
		// (a name resolving elsewhere) is refused at Start. Simulate with a
		// server whose validated Listen is swapped afterwards.
		s := f.server(t, func(c *Config) { c.Listen = "127.0.0.1:0" })
		s.cfg.Listen = "0.0.0.0:0"
		if err := s.Start(); !errors.Is(err, ErrNoToken) {
			t.Fatalf("err %v", err)
		}
		if s.Addr() != nil {
			t.Error("listener kept after refusal")
		}
	})
	t.Run("listen error names the address", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		s := f.server(t, func(c *Config) { c.Listen = ln.Addr().String() })
		if err := s.Start(); err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
			t.Errorf("err %v", err)
		}
	})
}

func TestAuditLog(t *testing.T) {
	f := newFixture(t)
	var buf syncbuf.Buffer
	log := zerolog.New(&buf)
	h := f.server(t, func(c *Config) { withToken(c); c.Logger = &log }).Handler()
	do(t, h, req{method: "DELETE", path: "/api/v1/bindings/shop.test/10.0.0.1", headers: map[string]string{"Authorization": "Bearer " + testToken}})
	do(t, h, req{path: "/api/v1/vector", headers: map[string]string{"Authorization": "Bearer " + testToken}})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var audits []string
	for _, l := range lines {
		if strings.Contains(l, `"admin: audit"`) {
			audits = append(audits, l)
		}
	}
	if len(audits) != 1 || !strings.Contains(audits[0], `"status":200`) || !strings.Contains(audits[0], `"auth":"bearer"`) ||
		!strings.Contains(audits[0], `"method":"DELETE"`) {
		t.Errorf("audit lines %q", audits)
	}
}
