// Package deploy holds what runs tether outside `make build`: the
// Kubernetes manifests (kubernetes/, a kustomization), the Grafana
// dashboard (grafana/) and the Prometheus alert rules (prometheus/); the
// Dockerfile is at the repository root. It has no Go code: its tests check
// those files from outside. They build the binary with the Dockerfile's
// own build command (static), parse the Dockerfile and the manifests, run
// the manifests' configuration through `tether validate`, run `kubectl
// kustomize` and `promtool check rules` where installed (make test
// installs them), and start a real two-node fleet to check that every
// metric the dashboard and the rules name is exported. See
// docs/operations.md.
package deploy
