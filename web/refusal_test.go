package web

import (
	"strings"
	"testing"
)

// PUT /api/v1/bindings/... as people type it with curl: a form
// Content-Type gets a message about the Content-Type, not about CSRF; a
// bearer-token call needs neither a JSON type nor a CSRF token.
func TestRebindContentType(t *testing.T) {
	path := "/api/v1/bindings/shop.test/10.0.0.1"
	body := `{"replica": "r2"}`
	for _, tc := range []struct {
		name    string
		token   bool
		headers map[string]string
		code    int
		says    string
	}{
		{"open, curl -d (form type)", false, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"},
		{"open, text/plain", false, map[string]string{"Content-Type": "text/plain"}, 415, "Content-Type 'text/plain'"},
		{"open, json", false, map[string]string{"Content-Type": "application/json"}, 200, `"replica": "r2"`},
		{"open, no type", false, nil, 200, `"replica": "r2"`},
		{"bearer, form type", true, map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer " + testToken}, 200, `"replica": "r2"`},
		{"bearer, no type", true, map[string]string{"Authorization": "Bearer " + testToken}, 200, `"replica": "r2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			var mod func(*Config)
			if tc.token {
				mod = withToken
			}
			w := do(t, f.server(t, mod).Handler(), req{method: "PUT", path: path, body: body, headers: tc.headers})
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.says) {
				t.Errorf("%d %s, want %d saying %s", w.Code, w.Body, tc.code, tc.says)
			}
			if strings.Contains(w.Body.String(), "CSRF token;") {
				t.Errorf("an API caller told to reload a page: %s", w.Body)
			}
		})
	}
}
