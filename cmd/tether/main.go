// Command tether is the sticky reverse-proxy fleet node. See README.md.
//
// Subcommands register themselves in `commands` from their own files
// (serve.go, validate.go, drain.go, demo.go, check.go), so each stays one
// concern.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand: it gets the arguments after its name and
// returns the process exit code. help, if set, writes the command's flags
// (for `tether help`).
type command struct {
	summary string
	run     func(args []string) int
	help    func(w io.Writer)
}

var commands = map[string]command{
	"version": {"print the version, the commit and the Go version", func([]string) int {
		fmt.Println(versionLine())
		return 0
	}, nil},
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run dispatches args (without the program name) and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	name := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "help", "-h", "-help", "--help":
			usage(stdout, true)
			return 0
		case "-v", "-version", "--version":
			fmt.Fprintln(stdout, versionLine())
			return 0
		}
		if len(args[0]) > 0 && args[0][0] != '-' {
			name, args = args[0], args[1:]
		}
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "tether: unknown command %q\n\n", name)
		usage(stderr, false)
		return 2
	}
	return c.run(args)
}

// usage lists the commands first, then (full) each command's flags.
func usage(w io.Writer, full bool) {
	fmt.Fprintln(w, "usage: tether [command] [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "  help      this text; `tether COMMAND -h` shows one command's flags")
	fmt.Fprintln(w, "\nwithout a command, tether serves. -v, --version: the version.")
	if !full {
		return
	}
	for _, n := range names {
		if h := commands[n].help; h != nil {
			fmt.Fprintf(w, "\nflags of tether %s:\n", n)
			h(w)
		}
	}
}
