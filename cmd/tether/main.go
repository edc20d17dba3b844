// Command tether is the sticky reverse-proxy fleet node. See README.md.
package main

import (
	"fmt"
	"os"
)

var version = "dev"

func main() {
	cmd := "serve"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	switch cmd {
	case "version":
		fmt.Println("tether", version)
	default:
		fmt.Fprintf(os.Stderr, "tether: %s: not built yet\n", cmd)
		os.Exit(2)
	}
}
