package recovery

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tetherproxy/tether/stickydb"
)

const childEnv = "TETHER_RECOVERY_CHILD_DIR"

var childReplicas = []string{"r1", "r2", "r3"}

// childMain is a node process for TestKillNine: it recovers from dir,
// then binds new keys in batches, flushing after each and printing how
// many keys are flushed, with Run snapshotting every few milliseconds,
// until it is killed.
func childMain(dir string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child:", err); return 1 }
	lg := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)
	st, err := Open(Config{Dir: dir, Logger: &lg, CheckInterval: time.Millisecond, SnapshotInterval: 20 * time.Millisecond})
	if err != nil {
		return fail(err)
	}
	cfg := stickydb.DefaultConfig("a")
	cfg.Durable = true
	db, err := stickydb.New(cfg, time.Now())
	if err != nil {
		return fail(err)
	}
	rec, err := st.Recover(db, time.Now())
	if err != nil {
		return fail(err)
	}
	if err := rec.Reconcile(time.Now()); err != nil {
		return fail(err)
	}
	go st.Run(context.Background())
	for i := db.Len(); i < 1_000_000; {
		for range 50 {
			if _, _, err := db.BindIfAbsent(key(nil, i), childReplicas[i%3], time.Now()); err != nil {
				return fail(err)
			}
			i++
		}
		if _, err := st.Flush(); err != nil {
			return fail(err)
		}
		fmt.Printf("flushed %d\n", i)
	}
	return 0
}

// TestKillNine: a real process is killed with SIGKILL at a random point,
// over and over, while it writes its log and snapshots. After each kill,
// every key it reported flushed is back with its replica, generation 1
// and its origin, and no key is bound wrongly.
func TestKillNine(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	flushed := 0
	for cycle := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		want := 3 + rng.IntN(30)
		for n := 0; n < want && sc.Scan(); n++ {
			if _, err := fmt.Sscanf(sc.Text(), "flushed %d", &flushed); err != nil {
				t.Fatalf("child said %q", sc.Text())
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		if flushed == 0 {
			t.Fatalf("cycle %d: child flushed nothing; stderr: %s", cycle, stderr.String())
		}

		st, err := Open(Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		db := newDB(t, "a", time.Now())
		rec, err := st.Recover(db, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if rec.Mode != ModeShort {
			t.Fatalf("cycle %d: report %+v", cycle, rec.Report)
		}
		now := time.Now().UnixMilli()
		for i := range db.Len() + 100 {
			b, ok := db.Lookup(key(t, i))
			switch {
			case !ok && i < flushed:
				t.Fatalf("cycle %d: key %d of %d flushed is missing (report %+v)", cycle, i, flushed, rec.Report)
			case ok && (b.Replica != childReplicas[i%3] || b.Generation == 0 || b.Generation > stickydb.BirthGeneration(time.Now()) || b.Origin != "a" || b.Deleted || b.Expiry <= now):
				t.Fatalf("cycle %d: key %d bound wrongly: %+v", cycle, i, b)
			}
		}
		t.Logf("cycle %d: killed after %d keys flushed; recovered %d (%d from the snapshot, %d log events, problems %q)",
			cycle, flushed, db.Len(), rec.Loaded, rec.LogEvents, rec.Problems)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
