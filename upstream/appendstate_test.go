package upstream

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestAppendedState(t *testing.T) {
	tests := []struct {
		name   string
		flags  []imap.Flag
		want   []imap.Flag
		wantOK bool
	}{
		{"none", nil, []imap.Flag{}, true},
		{"one system flag", []imap.Flag{`\Seen`}, []imap.Flag{imap.FlagSeen}, true},
		{"spelled in another case", []imap.Flag{`\dRaFt`}, []imap.Flag{imap.FlagDraft}, true},
		{"the same twice", []imap.Flag{`\Seen`, `\SEEN`}, []imap.Flag{imap.FlagSeen}, true},
		{"one keyword", []imap.Flag{"$Label1"}, []imap.Flag{"$Label1"}, true},
		{"two flags: order unknown", []imap.Flag{`\Seen`, `\Flagged`}, nil, false},
		{"a keyword and a flag", []imap.Flag{"Junk", `\Seen`}, nil, false},
		{"\\Recent is the server's", []imap.Flag{`\Recent`}, nil, false},
		{"unknown backslash flag", []imap.Flag{`\Important`}, nil, false},
		{"empty flag", []imap.Flag{""}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, ok := AppendedState(7, tc.flags)
			if ok != tc.wantOK {
				t.Fatalf("ok: got %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				return
			}
			if st.UID != 7 || st.ModSeq != 0 || !slices.Equal(st.Flags, tc.want) {
				t.Errorf("got %+v, want UID 7, MODSEQ 0, flags %v", st, tc.want)
			}
		})
	}
	if _, ok := AppendedState(0, nil); ok {
		t.Errorf("UID 0: got ok, want not")
	}
}
