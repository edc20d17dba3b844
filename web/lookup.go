package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// The fleet lookup answers "where is this client bound, and does every
// node agree?": this node's binding, and each live peer's own answer,
// asked of its admin API (the member metadata names it) with this node's
// token, plus what this node knows of the peer's vector.

// peerTimeout bounds one peer's answer.
const peerTimeout = 2 * time.Second

// LookupAnswer is one node's answer.
type LookupAnswer struct {
	Node  string `json:"node"`
	Self  bool   `json:"self,omitempty"`
	State string `json:"state"`
	Admin string `json:"admin,omitempty"`
	// Found: the node holds a live binding (Binding); Error: it could not
	// be asked (no admin address, unreachable, refused).
	Found   bool         `json:"found"`
	Binding *BindingView `json:"binding,omitempty"`
	Error   string       `json:"error,omitempty"`
	// Agrees: the same replica and generation as this node's answer (or
	// no binding on both). Meaningless when Error is set.
	Agrees bool `json:"agrees"`
	// LagEvents: own events of this node the peer's last vector (as heard
	// here) does not show; -1 when this node has no vector of it.
	LagEvents int64 `json:"lag_events"`
}

// LookupResponse is GET /api/v1/lookup.
type LookupResponse struct {
	Client  string         `json:"client"`
	Host    string         `json:"host"`
	Answers []LookupAnswer `json:"answers"`
	// Agree: every node that answered agrees with this node.
	Agree    bool `json:"agree"`
	Answered int  `json:"answered"`
}

// fleetLookup asks this node and every live peer about k.
func (s *Server) fleetLookup(ctx context.Context, k stickydb.Key) LookupResponse {
	now := s.now()
	resp := LookupResponse{Client: k.Client().String(), Host: k.Host()}
	mine, found := s.lookup(k, now)
	own := s.src.Core.Vector()
	table := map[string]stickydb.PeerInfo{}
	for _, p := range s.src.Core.Table() {
		table[p.Name] = p
	}
	self := LookupAnswer{Node: s.src.Core.Node(), Self: true, State: "alive", Found: found, Agrees: true}
	if found {
		self.Binding = &mine
	}
	var peers []LookupAnswer
	for _, m := range s.members() {
		if m.Self {
			self.Admin = m.Admin
			continue
		}
		a := LookupAnswer{Node: m.Name, State: m.State, Admin: m.Admin, LagEvents: -1}
		if p, ok := table[m.Name]; ok {
			a.LagEvents = int64(lag(own, p.Vector))
		}
		peers = append(peers, a)
	}
	var wg sync.WaitGroup
	for i := range peers {
		a := &peers[i]
		switch {
		case a.State != "alive":
			a.Error = "not alive"
			continue
		case a.Admin == "":
			a.Error = "advertises no admin address"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, ok, err := s.askPeer(ctx, a.Admin, k)
			if err != nil {
				a.Error = err.Error()
				return
			}
			a.Found = ok
			if ok {
				a.Binding = &b
			}
		}()
	}
	wg.Wait()
	resp.Agree = true
	resp.Answers = append(resp.Answers, self)
	for _, a := range peers {
		if a.Error == "" {
			resp.Answered++
			a.Agrees = a.Found == found && (!found || (a.Binding.Replica == mine.Replica && a.Binding.Generation == mine.Generation))
			resp.Agree = resp.Agree && a.Agrees
		}
		resp.Answers = append(resp.Answers, a)
	}
	sort.SliceStable(resp.Answers[1:], func(i, j int) bool { return resp.Answers[1+i].Node < resp.Answers[1+j].Node })
	return resp
}

// askPeer GETs the peer's /api/v1/bindings/{host}/{client}.
func (s *Server) askPeer(ctx context.Context, admin string, k stickydb.Key) (BindingView, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	u := strings.TrimRight(admin, "/") + "/api/v1/bindings/" + url.PathEscape(k.Host()) + "/" + url.PathEscape(k.Client().String())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return BindingView{}, false, err
	}
	req.Header.Set("Accept", "application/json")
	if s.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	}
	res, err := s.peerClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return BindingView{}, false, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return BindingView{}, false, err
	}
	switch res.StatusCode {
	case http.StatusOK:
		var b BindingView
		if err := json.Unmarshal(body, &b); err != nil {
			return BindingView{}, false, errors.New("answer is not a binding")
		}
		return b, true, nil
	case http.StatusNotFound:
		return BindingView{}, false, nil
	case http.StatusUnauthorized:
		return BindingView{}, false, errors.New("refused this node's token (401)")
	}
	var e errorBody
	_ = json.Unmarshal(body, &e)
	return BindingView{}, false, errors.New(res.Status + " " + e.Error)
}

// newPeerClient is the client of the fleet lookup: short timeouts, no
// redirects (an answer that moves is no answer).
func newPeerClient() *http.Client {
	return &http.Client{
		Timeout:       peerTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

func (s *Server) apiLookup(w http.ResponseWriter, r *http.Request) {
	k, err := s.parseKey(strings.TrimSpace(r.URL.Query().Get("host")), strings.TrimSpace(r.URL.Query().Get("client")))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, inputMessage(err))
		return
	}
	writeJSON(w, http.StatusOK, s.fleetLookup(r.Context(), k))
}

type lookupData struct {
	Client, Host string
	Asked        bool
	Error        string
	Result       LookupResponse
}

func (s *Server) lookupPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := lookupData{Client: strings.TrimSpace(q.Get("client")), Host: strings.TrimSpace(q.Get("host"))}
	status := http.StatusOK
	if d.Client != "" || d.Host != "" {
		k, err := s.parseKey(d.Host, d.Client)
		if err != nil {
			d.Error, status = inputMessage(err), http.StatusBadRequest
		} else {
			d.Asked, d.Result = true, s.fleetLookup(r.Context(), k)
		}
	}
	s.render(w, r, status, "lookup", "Fleet lookup", d)
}
