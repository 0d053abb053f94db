package quirks

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// BenchmarkHas: what asking the table costs against the direct test it
// replaced (the floor, BenchmarkHasDirect, in the same run): tens of
// nanoseconds, asked once per command or watcher round, beside an
// upstream round trip. Each checks its answer: Dovecot has MOVE.
func BenchmarkHas(b *testing.B) {
	for b.Loop() {
		if !Has(dovecotCaps, Move) {
			b.Fatal("got no MOVE, want MOVE")
		}
	}
}

func BenchmarkHasDirect(b *testing.B) {
	for b.Loop() {
		if !dovecotCaps.Has(imap.CapMove) && !dovecotCaps.Has(imap.CapIMAP4rev2) {
			b.Fatal("got no MOVE, want MOVE")
		}
	}
}

// BenchmarkHasAbsent: the worst case, every capability of a row looked
// up and missing (SPECIAL-USE on Dovecot).
func BenchmarkHasAbsent(b *testing.B) {
	for b.Loop() {
		if Has(dovecotCaps, SpecialUse) {
			b.Fatal("got SPECIAL-USE, want none")
		}
	}
}
