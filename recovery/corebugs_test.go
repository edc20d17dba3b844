//go:build corebugs

// Reproducers for stickydb behaviour the recovery package works around.
// They fail today; run with `go test -tags corebugs -run Core ./recovery/`.
// Kept out of the default build so the suite stays green.
package recovery

import (
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// TestCoreReplayOldEpochAfterNewEpoch: ReplayOwn of an older epoch while
// the current epoch has no event yet moves the DB back into the older
// epoch (adoptEpoch only checks seq == 0). Recovery replays epochs oldest
// first so it never meets this; a caller that replays after NewEpoch would.
func TestCoreReplayOldEpochAfterNewEpoch(t *testing.T) {
	db := newDB(t, "a", t0)
	e1 := t0.UnixMilli()
	if err := db.RestoreOwn(stickydb.SnapshotMeta{Node: "a", Epoch: e1, Seq: 10}); err != nil {
		t.Fatal(err)
	}
	e2 := e1 + 1000
	if err := db.NewEpoch(e2); err != nil {
		t.Fatal(err)
	}
	ev := stickydb.Event{Seq: 11, Kind: stickydb.KindBind, Key: key(t, 1),
		Binding: stickydb.Binding{Replica: "r1", Expiry: t0.Add(time.Minute).UnixMilli(), Generation: 1, Origin: "a"}}
	if err := db.ReplayOwn(e1, []stickydb.Event{ev}, t0); err != nil {
		t.Fatal(err)
	}
	if e, _ := db.Position(); e != e2 {
		t.Fatalf("ReplayOwn of epoch %d moved the DB from epoch %d back to %d", e1, e2, e)
	}
}

// TestCoreMarkPersistedAcrossEpochs: MarkPersisted takes no epoch, so a
// mark meant for the old epoch releases events of a new one that are not
// on disk. The Store routes every epoch change through Store.NewEpoch
// under its flush mutex to avoid it; MarkPersisted(epoch, seq) would make
// it impossible.
func TestCoreMarkPersistedAcrossEpochs(t *testing.T) {
	db := newDB(t, "a", t0)
	for i := range 5 {
		db.BindIfAbsent(key(t, i), "r1", t0)
	}
	written, _ := db.Unpersisted(0, 100) // the log writes E1:1..5
	if err := db.NewEpoch(t0.UnixMilli() + 1000); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		db.BindIfAbsent(key(t, 100+i), "r1", t0)
	}
	db.MarkPersisted(written.To) // meant for E1:5
	if g, _ := db.OwnEvents(0, 100); len(g.Events) != 0 {
		t.Fatalf("%d events of the new epoch released, none of them written", len(g.Events))
	}
}
