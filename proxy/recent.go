package proxy

import (
	"slices"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
	"github.com/idlemux/idlemux/upstream"
)

// \Recent through idlemux (RFC 3501 2.3.2): the model decides which session
// a message is recent in (fanout/recent.go); the upstream's \Recent belongs
// to a pool or watcher connection and is never relayed.

// sessionFlags turns a message's flags as an upstream connection reported
// them into the session's: the upstream's \Recent dropped, the session's
// own added last, where Dovecot writes it.
func sessionFlags(up []imap.Flag, recent bool) []imap.Flag {
	f := upstream.StripRecent(up)
	if recent {
		f = append(slices.Clip(f), fanout.FlagRecent)
	}
	return f
}

// recentToUID answers SEARCH RECENT, NEW and OLD from the session's own
// recency (RFC 3501 6.4.4: NEW is RECENT UNSEEN, OLD is NOT RECENT):
// imapserver parses them into the flag \Recent, which the upstream would
// judge by its own connection's recency. In c (a copy whose slices are
// still shared, so they are copied before any change), \Recent becomes
// UID recent, and NOT \Recent becomes NOT UID recent; with nothing
// recent, they match nothing and everything.
func recentToUID(c *imap.SearchCriteria, recent imap.UIDSet) {
	isRecent := func(f imap.Flag) bool { return f == fanout.FlagRecent }
	if slices.ContainsFunc(c.Flag, isRecent) {
		c.Flag = slices.DeleteFunc(slices.Clone(c.Flag), isRecent)
		if len(recent) == 0 {
			recent = noUID
		}
		c.UID = append(slices.Clip(c.UID), recent)
	}
	if slices.ContainsFunc(c.NotFlag, isRecent) {
		c.NotFlag = slices.DeleteFunc(slices.Clone(c.NotFlag), isRecent)
		if len(recent) > 0 {
			c.Not = append(slices.Clip(c.Not), imap.SearchCriteria{UID: []imap.UIDSet{recent}})
		}
	}
}

// statusRecent is STATUS RECENT as Dovecot answers it: on the session's own
// mailbox, its own recent count; otherwise the messages no session was told
// of yet. Without a watcher idlemux has no model of the mailbox, and
// imapclient cannot ask the upstream for RECENT: 0 then.
func (sess *session) statusRecent(mailbox string) uint32 {
	name := canonical(mailbox)
	if sess.sel != nil && sess.sel.name == name {
		return sess.sel.v.RecentCount()
	}
	if box := sess.acct.Model(name); box != nil {
		return box.Unclaimed()
	}
	return 0
}
