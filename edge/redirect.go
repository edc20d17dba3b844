package edge

import (
	"net"
	"net/http"
	"strings"
)

// RedirectHTTPS answers every request with 308 Permanent Redirect to the
// same host and path (query kept) over https. tlsPort is the TLS
// listener's port: it is left out of the URL when it is 443.
func RedirectHTTPS(tlsPort string) http.Handler {
	suffix := ""
	if tlsPort != "" && tlsPort != "443" {
		suffix = ":" + tlsPort
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
			if strings.Contains(host, ":") {
				host = "[" + host + "]"
			}
		}
		if host == "" || strings.ContainsAny(host, "/\\?#@ \t\r\n") {
			http.Error(w, "tether: invalid or missing Host", http.StatusBadRequest)
			return
		}
		target := "https://" + host + suffix + r.URL.RequestURI()
		if r.URL.Path == "" && r.URL.RawQuery == "" {
			target = "https://" + host + suffix + "/"
		}
		w.Header().Set("Location", target)
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusPermanentRedirect)
	})
}
