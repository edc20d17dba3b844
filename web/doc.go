// Package web is tether's admin listener: server-rendered pages for
// operators, the JSON API under /api/v1/, /metrics, /healthz and /readyz.
//
// # Model
//
// The admin reads the parts it shows through small interfaces defined
// here (sources.go): Core (the sticky database, *stickydb.DB or a wrapper
// that also kicks replication on an operator's change), Members (gossip),
// Backends (the proxy's pools, drain, routes reload), Transport (per-peer
// counters) and NodeInfo. It keeps no state of its own but a cache of
// per-replica binding counts (one table walk per Config.CountTTL): every
// page, API answer and scrape reads the sources when it is asked.
//
// Pages are html/template files embedded with go:embed and rendered on the
// server; app.js (embedded, no build step) only swaps the page's content
// for a fresh server rendering every Config.Refresh when "live" is on, and
// arms destructive buttons for a second click. Pages and API share their
// view types (views.go), so they never disagree.
//
// # Routes
//
//	GET  /                     overview: node, members, backends, counters
//	GET  /bindings             search (client IP or prefix, host, backend), paged
//	POST /bindings/delete      form: host, client
//	POST /bindings/rebind      form: host, client, replica
//	GET  /vectors              vector matrix, change logs, recent gaps
//	GET  /backends             pools; POST /backends/drain (pool, name, drain=1|0)
//	POST /routes/reload
//	GET|POST /login, POST /logout
//
//	GET    /api/v1/bindings?client=&host=&backend=&deleted=&limit=&cursor=
//	GET    /api/v1/bindings/{host}/{client}
//	GET    /api/v1/bindings/{host}/{client}?wait=2s
//	                                          blocking: answers once the binding is live here
//	                                          (merged from a peer or made), else 404 at the
//	                                          deadline (at most 1m; 256 waiting at once, 503)
//	DELETE /api/v1/bindings/{host}/{client}   tombstone, generation + 1
//	PUT    /api/v1/bindings/{host}/{client}   body {"replica": "r2"}: rebind
//	GET    /api/v1/vector?margin=5s           own vector, digest, vector table
//	GET    /api/v1/members                    [{name, addr, state, ...}]
//	GET    /api/v1/backends                   [{pool, name, url, healthy, draining, bindings, ...}]
//	POST   /api/v1/backends/{name}/drain?pool=    and .../undrain
//	POST   /api/v1/backends/{name}/drain?wait=10m&move_idle=2m
//	                                          drain, then answer once no node holds a live
//	                                          binding to it (or at the deadline): {empty,
//	                                          left, moved, nodes: [{node, live}], missing}
//	POST   /api/v1/routes/reload
//	GET    /api/v1/changelog, /api/v1/gaps, /api/v1/stats, /api/v1/node
//	GET    /metrics, /healthz, /readyz
//
// Errors are JSON {"error": "..."} on the API (pages render them): 400 for
// a bad filter, IP, host, limit, cursor, wait or body (the message names
// the field), 401 without a valid token, 403 for a foreign Host or Origin or a
// missing CSRF token, 404, 405, 429 after too many wrong tokens, 501 when
// the part is not wired on this node, 503 when too many requests wait for
// a binding.
//
// # Security
//
//   - Listen defaults to 127.0.0.1:9090. New refuses any other address
//     without a token (ErrNoToken), and Start checks the bound address again.
//   - With a token, every route but /healthz, /readyz, /static/ and /login
//     needs it: "Authorization: Bearer <token>", or the session cookie the
//     login form sets (HttpOnly, SameSite=Strict, Secure over TLS). Tokens are compared in constant time (on their SHA-256, so
//     the length leaks nothing either). Failures are limited per source
//     address before the comparison: once limited, the right token gets 429
//     too. A short or predictable token is refused at start (CheckToken).
//     Sessions live on the node that made them (a random id; logout forgets
//     it; SessionTTL, default 1h).
//     Read-only JSON and /metrics follow the same rule as pages.
//   - Host must be an IP literal, localhost, the Listen host or one of
//     Config.AllowedHosts (DNS rebinding); Origin, when sent, must be this
//     very listener (host and port) or an allowed name. Both are checked
//     before authentication.
//   - Mutations are POST, PUT or DELETE only. Forms, and any unsafe request
//     authenticated by the cookie or carrying a non-JSON body, need a CSRF
//     token: an HMAC of a random per-browser cookie, sent as the _csrf field
//     or the X-CSRF-Token header. A JSON call with a bearer token is exempt
//     (no browser attaches it on its own) but still passes the Origin check.
//   - Every response carries a CSP without inline script or style,
//     frame-ancestors 'none' and X-Frame-Options DENY, nosniff,
//     Referrer-Policy same-origin (under no-referrer a browser sends
//     "Origin: null" on the page's own form posts); dynamic responses are
//     no-store.
//   - Cookies are not isolated by port: the proxy drops the
//     tether_admin_session and tether_admin_csrf cookies (every cookie
//     named proxy.AdminCookiePrefix...) from requests it forwards, so a
//     backend app on the same host name never sees them.
//
// # Stable element ids (for browser tests)
//
// Tests select by these; they are a contract like the API paths.
//
//	layout     #nav-overview #nav-bindings #nav-vectors #nav-backends
//	           #live-toggle #live-state #node-name #node-ready[data-ready]
//	           #logout #flash[data-kind=ok|error] #content
//	login      #login-form #login-token #login-submit #login-error
//	overview   #members-table tr[data-member][data-state], #ov-digest[data-sum]
//	bindings   #bindings-search #f-client #f-host #f-backend #f-limit
//	           #f-deleted #f-submit #f-clear #bindings-error #bindings-empty
//	           #bindings-count[data-count] #page-next[data-cursor] #page-first
//	           #bindings-table tr[data-client][data-host][data-replica]
//	           [data-generation][data-origin], in a row:
//	           button[data-action=delete] (two-step: the first click adds
//	           class "armed", the second submits), select[data-field=replica]
//	           + button[data-action=rebind]
//	vectors    #vector-matrix td[data-row][data-origin][data-epoch][data-seq]
//	           [data-behind], #vec-digest[data-sum], #changelog-table,
//	           #gaps-table, #gaps-empty
//	backends   tr[data-pool][data-backend][data-healthy][data-draining],
//	           button[data-action=drain|undrain] (drain is two-step),
//	           #routes-reload (two-step)
//	errors     #error[data-status] #error-message
//
// package webtest starts a Server on real parts and drives a headless
// chromium (NewBrowser, Nav, Login, ConfirmClick, Shot).
//
// # Metrics
//
// A custom collector reads the sources at scrape time (metrics.go): the
// tether_* families for bindings, own events, received groups and events,
// refusals, gap and full-copy requests, per-peer lag, last heard and
// liveness, change log sizes, gossip per-peer counters (from Transport),
// backend health, drain and bindings, and members by state. Other packages
// register their own collectors (the proxy's request histogram) on
// Config.Registry.
package web
