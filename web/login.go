package web

import "net/http"

type loginData struct {
	Next  string
	Error string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Query().Get("next")
	if !localPath(next) {
		next = "/"
	}
	if s.guard.open || s.guard.sessionOK(r) {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", "Log in", loginData{Next: next})
}

// loginSubmit checks the token (constant time; per-source failures are
// limited before the comparison, so once limited the right token is
// refused too) and sets the session cookie: HttpOnly (no script reads
// it), SameSite Strict (no other site's page sends it), Secure over TLS.
// The session lives on this node only, for SessionTTL, until logout.
func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	next := r.PostFormValue("next")
	if !localPath(next) {
		next = "/"
	}
	if s.guard.open {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	src := sourceOf(r)
	if s.guard.attempts.limited(src, s.guard.now()) {
		s.fail(w, r, http.StatusTooManyRequests, "too many failed logins from this address; retry later")
		return
	}
	if !s.guard.tokenOK(r.PostFormValue("token")) {
		s.guard.attempts.fail(src, s.guard.now())
		s.guard.noisy.Warn().Str("remote", r.RemoteAddr).Msg("admin: failed login")
		s.render(w, r, http.StatusUnauthorized, "login", "Log in", loginData{Next: next, Error: "Wrong token."})
		return
	}
	value, expires := s.guard.newSession()
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: value, Path: "/", Expires: expires,
		MaxAge: int(s.cfg.SessionTTL.Seconds()), HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.guard.secure || r.TLS != nil,
	})
	s.log.Info().Str("remote", r.RemoteAddr).Msg("admin: login")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session on this node (the cookie stops working even if
// a copy of it was kept) and clears the cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	s.guard.endSession(r)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.guard.secure || r.TLS != nil})
	target := "/login?done=loggedout"
	if s.guard.open {
		target = "/"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}
