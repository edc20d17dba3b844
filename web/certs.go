package web

import (
	"net/http"
	"time"
)

// Certificate is one certificate the node's TLS listener serves.
type Certificate struct {
	File     string    `json:"file"`
	Names    []string  `json:"names"`
	NotAfter time.Time `json:"not_after"`
	// Default is the certificate for clients without SNI or with an
	// unknown name.
	Default bool `json:"default"`
	// Error is why newer files on disk were refused ("" if none); the
	// certificate shown stays in force.
	Error string `json:"error,omitempty"`
}

// Certificates lists the TLS listener's certificates.
//
// Contract: called from handler goroutines, several at once; must not
// block. The slice is the caller's.
type Certificates interface {
	Certificates() []Certificate
}

// CertView is a Certificate with the time left, for the page and API.
type CertView struct {
	Certificate
	DaysLeft int  `json:"days_left"`
	Soon     bool `json:"expires_soon"` // under 14 days left
}

func (s *Server) certificates() []CertView {
	if s.src.Certs == nil {
		return nil
	}
	now := s.now()
	var out []CertView
	for _, c := range s.src.Certs.Certificates() {
		left := c.NotAfter.Sub(now)
		out = append(out, CertView{Certificate: c, DaysLeft: int(left.Hours() / 24), Soon: left < 14*24*time.Hour})
	}
	return out
}

func (s *Server) apiCertificates(w http.ResponseWriter, _ *http.Request) {
	certs := s.certificates()
	if certs == nil {
		certs = []CertView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"certificates": certs})
}
