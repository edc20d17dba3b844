package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"github.com/caarlos0/env/v11"
)

func init() {
	commands["validate"] = command{"check the configuration serve would run with, bind nothing, print it (exit 0) or the error (exit 2)",
		func(args []string) int {
			return validateMain(args, env.ToMap(os.Environ()), os.Hostname, os.Stdout, os.Stderr)
		},
		func(w io.Writer) { fmt.Fprintln(w, "  the flags of serve (every setting is also a TETHER_* variable)") },
	}
}

// validateMain is `tether validate`: the same environment, flags and
// routes file as serve, through the same loadConfig, so it refuses exactly
// what serve would refuse at start. It binds no port and starts nothing.
// On success it prints the settings in force as an environment file
// (secrets hidden) and the routes, and returns 0; otherwise it names the
// variable, flag or file line and returns 2.
func validateMain(args []string, environ map[string]string, hostname func() (string, error), stdout, stderr io.Writer) int {
	s, err := readSettings("tether validate", args, environ, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var c Config
	if err == nil {
		c, err = s.config(hostname)
	}
	if err != nil {
		fmt.Fprintln(stderr, "tether validate:", err)
		return 2
	}
	s.NodeName = c.NodeName
	fmt.Fprintln(stdout, "# tether validate: configuration OK; tether", version)
	writeSettings(stdout, s)
	writeRoutes(stdout, c)
	return 0
}

// writeSettings prints every setting as VAR=value, secrets hidden.
func writeSettings(w io.Writer, s settings) {
	v := reflect.ValueOf(s)
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		val := v.Field(i).String()
		if f.Tag.Get("secret") != "" && val != "" {
			val = "(hidden)"
		}
		fmt.Fprintf(w, "%s=%s\n", f.Tag.Get("env"), val)
	}
}

// writeRoutes prints the pools the proxy would serve.
func writeRoutes(w io.Writer, c Config) {
	fmt.Fprintf(w, "# routes: %d pools\n", len(c.Routes.Pools))
	for _, p := range c.Routes.Pools {
		hosts := "(every other Host)"
		if len(p.Hosts) > 0 {
			hosts = strings.Join(p.Hosts, ",")
		}
		fmt.Fprintf(w, "#   pool %s: hosts %s\n", p.Name, hosts)
		for _, b := range p.Backends {
			fmt.Fprintf(w, "#     %s %s weight %g\n", b.Name, b.URL.Redacted(), b.Weight)
		}
	}
}

// settingsHelp writes the flags of serve or validate with their defaults.
func settingsHelp(name string) func(io.Writer) {
	return func(w io.Writer) {
		var s settings
		_ = env.ParseWithOptions(&s, env.Options{Environment: map[string]string{}}) // the envDefault values
		settingsFlags(name, &s, w).PrintDefaults()
	}
}
