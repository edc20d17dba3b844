package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages holds one template set per page (layout + page), and the static
// assets' version for cache busting.
type pages struct {
	sets    map[string]*template.Template
	version string
}

var pageNames = []string{"overview", "bindings", "vectors", "backends", "lookup", "login", "error"}

func loadPages() (*pages, error) {
	p := &pages{sets: map[string]*template.Template{}}
	h := sha256.New()
	err := fs.WalkDir(staticFS, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(path)
		h.Write(b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("web: static assets: %w", err)
	}
	p.version = hex.EncodeToString(h.Sum(nil))[:12]
	for _, n := range pageNames {
		t, err := template.New(n).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html")
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", n, err)
		}
		p.sets[n] = t
	}
	return p, nil
}

var funcs = template.FuncMap{
	"epochLabel": func(ms int64) string {
		if ms == 0 {
			return "—"
		}
		return time.UnixMilli(ms).UTC().Format("01-02 15:04:05")
	},
	"epochFull": func(ms int64) string {
		return fmt.Sprintf("%d (%s)", ms, time.UnixMilli(ms).UTC().Format(time.RFC3339Nano))
	},
	"ago": func(now time.Time, ms int64) string {
		if ms == 0 {
			return "never"
		}
		d := now.Sub(time.UnixMilli(ms))
		if d < time.Second {
			return "just now"
		}
		return humanAge(d) + " ago"
	},
	"clock": func(ms int64) string {
		if ms == 0 {
			return "—"
		}
		return time.UnixMilli(ms).UTC().Format("15:04:05.000")
	},
	"weight": func(w float64) string { return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", w), "0"), ".") },
	"plural": func(n int, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	},
	"withCursor": func(f Filter, cursor string) string { return "/bindings?" + f.values(cursor).Encode() },
	"withSort":   func(f Filter, by string) string { f.Sort = by; return "/bindings?" + f.values("").Encode() },
	"int":        func(v uint64) int { return int(min(v, 1<<31)) },
	"checkAge": func(now, at time.Time) string {
		if at.IsZero() {
			return "—"
		}
		return humanAge(now.Sub(at)) + " ago"
	},
}

// values renders a filter back into a query string.
func (f Filter) values(cursor string) url.Values {
	v := url.Values{}
	for _, kv := range [][2]string{{"client", f.Client}, {"host", f.Host}, {"backend", f.Backend}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	if f.Deleted {
		v.Set("deleted", "1")
	}
	if f.Limit != 0 {
		v.Set("limit", fmt.Sprint(f.Limit))
	}
	if f.Sort != "" {
		v.Set("sort", f.Sort)
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	return v
}

// pageData wraps every page's data with what the layout needs.
type pageData struct {
	Title     string
	Nav       string
	Node      NodeView
	CSRF      string
	LoggedIn  bool
	Authed    bool // let in: shows the node's details and the navigation
	RefreshMs int64
	Version   string
	Now       time.Time
	Flash     string
	FlashKind string // "ok" or "error"
	Data      any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	now := s.now()
	pd := pageData{
		Title: title, Nav: name, Node: s.nodeView(now), CSRF: csrfToken(r),
		RefreshMs: s.cfg.Refresh.Milliseconds(), Version: s.pages.version, Now: now, Data: data,
	}
	k, authed := r.Context().Value(ctxAuth).(authKind)
	pd.Authed, pd.LoggedIn = authed, authed && k == authCookie
	if !authed {
		pd.Node = NodeView{Name: pd.Node.Name} // no epoch, version or uptime before login
	}
	pd.Flash, pd.FlashKind = flashFor(r.URL.Query())
	tmpl := "layout"
	if r.Header.Get("X-Tether-Partial") == "1" {
		tmpl = "content" // live refresh swaps only the content
	}
	var buf bytes.Buffer
	if err := s.pages.sets[name].ExecuteTemplate(&buf, tmpl, pd); err != nil {
		s.log.Error().Err(err).Str("page", name).Msg("admin: render")
		http.Error(w, "render error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "error", http.StatusText(status), struct {
		Status int
		Text   string
		Msg    string
	}{status, http.StatusText(status), msg})
}

// flashFor turns ?done=<code>&subject=<text> into a message. Only fixed
// codes are known, so a crafted link can at most show a wrong subject.
func flashFor(v url.Values) (string, string) {
	subj := v.Get("subject")
	if len(subj) > 200 {
		subj = subj[:200]
	}
	switch v.Get("done") {
	case "deleted":
		return "Deleted the binding of " + subj + ". Every node will drop it.", "ok"
	case "rebound":
		return "Rebound " + subj + ".", "ok"
	case "drained":
		return "Draining " + subj + ": it takes no new bindings.", "ok"
	case "undrained":
		return "Undrained " + subj + ".", "ok"
	case "reloaded":
		return "Routes reloaded.", "ok"
	case "loggedout":
		return "Logged out.", "ok"
	}
	return "", ""
}

// back redirects after a form to a local path with a flash code.
func back(w http.ResponseWriter, r *http.Request, fallback, done, subject string) {
	to := r.PostFormValue("return")
	if !localPath(to) {
		to = fallback
	}
	u, _ := url.Parse(to)
	q := u.Query()
	q.Del("done")
	q.Del("subject")
	q.Set("done", done)
	q.Set("subject", subject)
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// localPath accepts only paths on this listener, so a form or a login
// cannot be turned into an open redirect.
func localPath(p string) bool {
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == ""
}

func (s *Server) static() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("v") != "" {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		files.ServeHTTP(w, r)
	})
}
