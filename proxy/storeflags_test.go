package proxy

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestApplyStore: the flags a STORE leaves, as the session computes them
// to tell whether a .SILENT STORE alone made a message's flags.
func TestApplyStore(t *testing.T) {
	cur := []imap.Flag{imap.FlagSeen, "$a"}
	tests := []struct {
		name string
		op   imap.StoreFlagsOp
		arg  []imap.Flag
		want []imap.Flag
	}{
		{"add new", imap.StoreFlagsAdd, []imap.Flag{"$b"}, []imap.Flag{imap.FlagSeen, "$a", "$b"}},
		{"add present, other case", imap.StoreFlagsAdd, []imap.Flag{"$A"}, []imap.Flag{imap.FlagSeen, "$a"}},
		{"remove", imap.StoreFlagsDel, []imap.Flag{`\SEEN`}, []imap.Flag{"$a"}},
		{"remove absent", imap.StoreFlagsDel, []imap.Flag{"$z"}, []imap.Flag{imap.FlagSeen, "$a"}},
		{"replace", imap.StoreFlagsSet, []imap.Flag{imap.FlagFlagged}, []imap.Flag{imap.FlagFlagged}},
		{"replace with none", imap.StoreFlagsSet, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := applyStore(cur, &imap.StoreFlags{Op: tt.op, Flags: tt.arg})
			if !sameFlags(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSameFlags compares flag lists as sets, without case, ignoring \Recent.
func TestSameFlags(t *testing.T) {
	tests := []struct {
		a, b []imap.Flag
		want bool
	}{
		{[]imap.Flag{"$a", imap.FlagSeen}, []imap.Flag{`\seen`, "$A"}, true},
		{[]imap.Flag{"$a"}, []imap.Flag{"$a", `\Recent`}, true},
		{[]imap.Flag{"$a", "$a"}, []imap.Flag{"$a"}, true},
		{[]imap.Flag{"$a"}, []imap.Flag{"$b"}, false},
		{[]imap.Flag{"$a"}, []imap.Flag{"$a", "$b"}, false},
		{nil, nil, true},
	}
	for _, tt := range tests {
		if got := sameFlags(tt.a, tt.b); got != tt.want {
			t.Errorf("sameFlags(%v, %v): got %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
