package chaos

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/tetherproxy/tether/test/fleet"
	"go.uber.org/goleak"
)

var (
	flagDuration = flag.Duration("duration", 0, "fault phase of the long form (make chaos); 0 runs the short form: every nemesis once, plus two combinations")
	flagSeed     = flag.Uint64("seed", 0, "random seed (0: from the clock; the report prints it)")
	flagRace     = flag.Bool("race", false, "build tether with the race detector")
	flagReport   = flag.String("report", "", "also write the figures to this file")
)

var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "tether-chaos-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = fleet.BuildWith(dir, *flagRace, "faultinject")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
