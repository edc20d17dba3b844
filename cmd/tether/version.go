package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version and commit are stamped by `make build` with
//
//	-ldflags "-X main.version=$(git describe --tags --always --dirty) -X main.commit=$(git rev-parse HEAD)"
//
// A binary built without them (go build, go install) takes what the Go
// toolchain recorded instead (debug.ReadBuildInfo: the module version for
// go install pkg@version, the VCS revision for a build in a checkout).
var (
	version = ""
	commit  = ""
)

func init() { version, commit = stamp(version, commit, debug.ReadBuildInfo) }

// stamp fills what ldflags left empty from the build info.
func stamp(v, c string, read func() (*debug.BuildInfo, bool)) (string, string) {
	if v != "" && c != "" {
		return v, c
	}
	var rev, modified string
	bi, ok := read()
	if ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
	}
	if c == "" {
		c = rev
		if c != "" && modified == "true" {
			c += "-dirty"
		}
	}
	if v == "" && ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "dev"
	}
	if c == "" {
		c = "unknown"
	}
	return v, c
}

// versionLine is what `tether version` prints.
func versionLine() string {
	return fmt.Sprintf("tether %s (commit %s, %s, %s/%s)", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
