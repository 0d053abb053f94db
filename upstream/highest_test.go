package upstream

import (
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
)

// TestHighestModSeqPublishedWithChanges: the HIGHESTMODSEQ sessions read
// (Watcher.HighestModSeq, a SELECT's through fanout.SelectData) is the
// model's, raised in the transaction that brings the changes it bounds
// (RFC 7162 3.1.2.1): a value the watcher read upstream (fetchChanged,
// setModSeq) is not visible before the changes are in the model, and a
// view opened in between reports the older value with the older state.
func TestHighestModSeqPublishedWithChanges(t *testing.T) {
	type reading struct {
		name      string
		got, want uint64
	}
	w := postWatcher(t)
	box := w.Mailbox()
	box.Update(func(tx *fanout.Tx) { tx.SetHighestModSeq(w.modseq) })
	w.setModSeq(12) // read upstream, its changes not applied yet
	_, sd, err := box.OpenView(false)
	if err != nil {
		t.Fatal(err)
	}
	readings := []reading{
		{"watcher before the update", w.HighestModSeq(), 10},
		{"SELECT before the update", sd.HighestModSeq, 10},
	}
	box.Update(func(tx *fanout.Tx) {
		tx.SetFlags(2, []imap.Flag{imap.FlagFlagged})
		tx.SetModSeq(2, 12)
		tx.SetHighestModSeq(w.modseq)
	})
	_, sd, _ = box.OpenView(false)
	readings = append(readings,
		reading{"watcher after the update", w.HighestModSeq(), 12},
		reading{"SELECT after the update", sd.HighestModSeq, 12})
	for _, r := range readings {
		if r.got != r.want {
			t.Errorf("%s: got HIGHESTMODSEQ %d, want %d", r.name, r.got, r.want)
		}
	}
}
