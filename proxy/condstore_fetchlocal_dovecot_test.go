package proxy

import (
	"slices"
	"strings"
	"testing"
)

// TestDovecotCondstoreFetchFromModel: FETCH of FLAGS, UID and MODSEQ,
// with and without (CHANGEDSINCE m) (RFC 7162 3.1.4, 3.1.4.1), is
// answered from the model while the watcher idles, and the wire is what
// Dovecot writes directly for the same commands on an identical mailbox
// (item order, MODSEQ implied by CHANGEDSINCE last, only the messages
// changed since m). A FETCH with any other item still goes upstream.
func TestDovecotCondstoreFetchFromModel(t *testing.T) {
	_, direct, proxied, p := rawPairProxy(t, "Ms", nil)
	for _, rc := range []*rawConn{direct, proxied} {
		rc.cmd("e", "ENABLE CONDSTORE")
	}
	idleOnce(t, proxied, p, "MsP")
	same := func(cmd string) []string {
		want, got := taggedStatusOnly(direct.cmd("f", cmd)), taggedStatusOnly(proxied.cmd("f", cmd))
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q (Dovecot)", cmd, got, want)
		}
		return want
	}
	same(`STORE 2 +FLAGS.SILENT (\Flagged)`)
	for _, tc := range []struct {
		cmd   string
		local float64
	}{
		{"FETCH 1:* (FLAGS MODSEQ)", 1},
		{"FETCH 1:* (MODSEQ UID FLAGS)", 1},
		{"UID FETCH 1:* (MODSEQ FLAGS)", 1},
		{"FETCH 1:* MODSEQ", 1},
		{"FETCH 1:* (FLAGS) (CHANGEDSINCE 1)", 1},
		{"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 4)", 1},
		{"FETCH 1:* (UID) (CHANGEDSINCE 4)", 1},
		{"FETCH 1:* (FLAGS) (CHANGEDSINCE 1000)", 1}, // nothing changed since: no response
		{"FETCH 1:* (FLAGS MODSEQ FLAGS)", 0},        // an item twice: the upstream decides
		{"FETCH 1:* (FLAGS RFC822.SIZE MODSEQ)", 0},
	} {
		checkCounts(t, p, tc.cmd, tc.local, -1, func() {
			if want := same(tc.cmd); tc.local > 0 && len(want) < 2 && tc.cmd != "FETCH 1:* (FLAGS) (CHANGEDSINCE 1000)" {
				t.Errorf("%s: Dovecot answered %q, want FETCH responses", tc.cmd, want)
			}
		})
	}
}

// taggedStatusOnly keeps of a tagged line its tag and status: the texts
// are each server's own (Dovecot adds timings).
func taggedStatusOnly(lines []string) []string {
	out := slices.Clone(lines)
	for i, l := range out {
		if f := strings.Fields(l); !strings.HasPrefix(l, "* ") && len(f) >= 2 {
			out[i] = f[0] + " " + f[1]
		}
	}
	return out
}
