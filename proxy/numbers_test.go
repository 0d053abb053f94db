package proxy

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestMaxUIDOf(t *testing.T) {
	tests := []struct {
		name string
		set  imap.UIDSet
		want imap.UID
	}{
		{"empty", nil, 0},
		{"one", imap.UIDSetNum(5), 5},
		{"ranges", imap.UIDSet{{Start: 1, Stop: 3}, {Start: 9, Stop: 12}, {Start: 4, Stop: 4}}, 12},
		{"reversed range", imap.UIDSet{{Start: 20, Stop: 2}}, 20},
		{"star: no bound", imap.UIDSet{{Start: 1, Stop: 3}, {Start: 9, Stop: 0}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := maxUIDOf(tc.set); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}
