package proxy

import (
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
)

// modseqPerm is a permSource whose session enabled CONDSTORE or not.
type modseqPerm struct {
	fixedPerm
	on bool
}

func (p modseqPerm) tellsModSeq() bool { return p.on }

// TestUnsolicitedModSeq: the one encoder of unsolicited updates writes
// MODSEQ (RFC 7162 3.1.4) in a flag update only for a CONDSTORE-enabled
// session and only where the model knows it, before FLAGS as Dovecot
// does; everything else is byte for byte what it was.
func TestUnsolicitedModSeq(t *testing.T) {
	flags := []imap.Flag{imap.FlagSeen, "$Label1"}
	tests := []struct {
		name string
		ps   permSource
		u    fanout.Update
		want string
	}{
		{"enabled", modseqPerm{on: true}, fanout.Update{Kind: fanout.UpdateFlags, Seq: 2, UID: 20, Flags: flags, ModSeq: 7},
			"* 2 FETCH (UID 20 MODSEQ (7) FLAGS (\\Seen $Label1))\r\n"},
		{"enabled, no UID", modseqPerm{on: true}, fanout.Update{Kind: fanout.UpdateFlags, Seq: 2, Flags: nil, ModSeq: 18446744073709551615},
			"* 2 FETCH (MODSEQ (18446744073709551615) FLAGS ())\r\n"},
		{"enabled, MODSEQ unknown", modseqPerm{on: true}, fanout.Update{Kind: fanout.UpdateFlags, Seq: 2, UID: 20, Flags: flags},
			"* 2 FETCH (UID 20 FLAGS (\\Seen $Label1))\r\n"},
		{"not enabled", modseqPerm{on: false}, fanout.Update{Kind: fanout.UpdateFlags, Seq: 2, UID: 20, Flags: flags, ModSeq: 7},
			"* 2 FETCH (UID 20 FLAGS (\\Seen $Label1))\r\n"},
		{"no CONDSTORE state", fixedPerm{}, fanout.Update{Kind: fanout.UpdateFlags, Seq: 2, UID: 20, Flags: flags, ModSeq: 7},
			"* 2 FETCH (UID 20 FLAGS (\\Seen $Label1))\r\n"},
		{"EXISTS unchanged", modseqPerm{on: true}, fanout.Update{Kind: fanout.UpdateExists, Seq: 3, ModSeq: 7}, "* 3 EXISTS\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("* 1 EXPUNGE\r\n") // the encoder appends
			got := string(appendUpdates(prefix, []fanout.Update{tt.u}, tt.ps, nil))
			if want := "* 1 EXPUNGE\r\n" + tt.want; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}
