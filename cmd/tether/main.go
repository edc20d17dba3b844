// Command tether is the sticky reverse-proxy fleet node. See README.md.
//
// Subcommands register themselves in `commands` from their own files
// (serve.go, demo.go, check.go), so each stays one concern.
package main

import (
	"fmt"
	"os"
	"sort"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand: it gets the arguments after its name and
// returns the process exit code.
type command struct {
	summary string
	run     func(args []string) int
}

var commands = map[string]command{
	"version": {"print the version", func([]string) int { fmt.Println("tether", version); return 0 }},
}

func main() {
	name, args := "serve", os.Args[1:]
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "help" || name == "-h" || name == "--help" {
		usage()
		os.Exit(0)
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "tether: unknown command %q\n", name)
		usage()
		os.Exit(2)
	}
	os.Exit(c.run(args))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: tether [command] [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nwithout a command, tether serves (every setting is also a TETHER_* variable)")
}
