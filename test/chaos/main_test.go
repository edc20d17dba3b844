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
	flagRace     = flag.Bool("race", true, "build tether with the race detector (a data race in any node fails the run)")
	flagReport   = flag.String("report", "", "also write the figures to this file")
	flagLogs     = flag.String("logs", "", "copy every node's log into this directory at the end")
	flagHold     = flag.Duration("hold", 0, "hold every fault exactly this long (0: drawn, 2-4 s short form, 2-12 s long form)")
	flagNoReady  = flag.Bool("no-readiness", false, "send clients to every running node, ready or not (no load balancer checking /readyz)")
	flagPlan     = flag.String("plan", "", "run these steps instead: nemeses joined by + within a step, steps by commas (e.g. loss,partition-2way+backend-crash)")
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
