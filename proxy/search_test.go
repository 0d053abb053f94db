package proxy

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
)

// TestTranslateCriteriaCompact: each sequence range becomes one UID range
// whatever the gaps between the view's UIDs, so "1:*" stays one range,
// and the rewrite of sequence numbers reaches inside NOT and OR.
func TestTranslateCriteriaCompact(t *testing.T) {
	uids := []imap.UID{3, 7, 8, 20, 4000000000}
	m := fanout.NewMailbox(fanout.Snapshot{UIDValidity: 1, UIDNext: 4000000001, UIDs: uids, MsgFlags: make([][]imap.Flag, len(uids))}, 100)
	v, _, err := m.NewView()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	sess := &session{sel: &selection{v: v}}
	tests := []struct {
		name string
		in   imap.SearchCriteria
		want string // the UID sets, root first, then NOT and OR operands
	}{
		{"all", imap.SearchCriteria{SeqNum: []imap.SeqSet{{{Start: 1, Stop: 0}}}}, "3:4000000000"},
		{"adjacent numbers", imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(1, 2, 3)}}, "3:8"},
		{"apart", imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(2, 4)}}, "7,20"},
		{"UID star is the view's last", imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(0)}}, "4000000000"},
		{"inside NOT and OR", imap.SearchCriteria{
			Not: []imap.SearchCriteria{{SeqNum: []imap.SeqSet{imap.SeqSetNum(5)}}},
			Or:  [][2]imap.SearchCriteria{{{SeqNum: []imap.SeqSet{imap.SeqSetNum(1)}}, {UID: []imap.UIDSet{imap.UIDSetNum(8)}}}},
		}, " 4000000000 3 8"},
	}
	for _, tt := range tests {
		out, size, err := sess.translateCriteria(&tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		var got []string
		for _, c := range []*imap.SearchCriteria{out} {
			got = append(got, uidSets(c))
			for _, n := range c.Not {
				got = append(got, uidSets(&n))
			}
			for _, o := range c.Or {
				got = append(got, uidSets(&o[0]), uidSets(&o[1]))
			}
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("%s: got UID sets %q, want %q", tt.name, g, tt.want)
		}
		if len(tt.in.Not) > 0 && len(tt.in.Not[0].SeqNum) == 0 {
			t.Errorf("%s: the client's criteria were modified", tt.name)
		}
		if size < len("UID ")+len(tt.want) {
			t.Errorf("%s: size %d, less than the UID sets alone", tt.name, size)
		}
	}
}

func uidSets(c *imap.SearchCriteria) string {
	var s []string
	for _, u := range c.UID {
		s = append(s, u.String())
	}
	if len(c.SeqNum) > 0 {
		s = append(s, "seq!")
	}
	return strings.Join(s, ",")
}
