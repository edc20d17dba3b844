package web

import (
	"net/http"
	"strings"
)

// csrfRefusal says why an unsafe request without a valid CSRF token is
// refused, in the terms of the caller: a page's form, a script using the
// session cookie, or an API call whose body is not JSON (curl -d sends a
// form type unless told otherwise).
func csrfRefusal(r *http.Request) (int, string) {
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		return http.StatusForbidden, "missing or wrong CSRF token; reload the page and try again"
	}
	if k, _ := r.Context().Value(ctxAuth).(authKind); k == authCookie {
		return http.StatusForbidden, "missing or wrong CSRF token: a call authenticated by the session cookie " +
			"must send the X-CSRF-Token header; a script should send Authorization: Bearer <token> instead (no CSRF token needed)"
	}
	ct := r.Header.Get("Content-Type")
	return http.StatusUnsupportedMediaType, "Content-Type " + quoteCT(ct) + ": the API takes application/json " +
		`(curl -H 'Content-Type: application/json' -d '{"replica": "<backend>"}'); ` +
		"calls with Authorization: Bearer <token> need no CSRF token"
}

func quoteCT(ct string) string {
	if len(ct) > 60 {
		ct = ct[:60]
	}
	return "'" + strings.Map(func(r rune) rune {
		if r < ' ' || r == '\'' || r > '~' {
			return '?'
		}
		return r
	}, ct) + "'"
}
