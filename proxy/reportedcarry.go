package proxy

import (
	"github.com/emersion/go-imap/v2"
)

// A command that reported flags (STORE's FETCH responses, a FETCH that
// showed them) skips those changes when its Poll delivers them from the
// model (sess.reported). During FETCH, STORE and SEARCH that Poll stops
// at the first expunge in the log (RFC 3501 7.4.1), so a change the
// command reported that lies past an expunge held back is delivered by a
// later command's Poll, after sess.reported was cleared: the client got
// its own STORE's FETCH twice (issue 13). Dovecot tells it once. The
// record is carried, each entry until the session is told everything the
// model held when it was made; the flags still decide (a later change by
// another session to other flags goes out).

// maxCarried bounds the carried record: past it a command's report is not
// carried (its changes may then be told twice, as before).
const maxCarried = 4096

// carriedFlags is a reported message's flags and the log position the
// session's view must reach before they stop being skipped.
type carriedFlags struct {
	flags []imap.Flag
	until uint64
}

// mergeCarried adds the carried entries the view has not passed to the
// running command's report (its own entries are newer and win).
func (sess *session) mergeCarried(sel *selection) {
	if len(sess.carried) == 0 {
		return
	}
	told, _ := sel.v.Position()
	for uid, c := range sess.carried {
		if c.until <= told {
			continue
		}
		if _, ok := sess.reported[uid]; ok {
			continue
		}
		if sess.reported == nil {
			sess.reported = make(map[imap.UID][]imap.Flag, len(sess.carried))
		}
		sess.reported[uid] = c.flags
	}
}

// carryReported runs after a delivery: it drops the carried entries the
// view has now passed and, when the delivery stopped short of the
// model's head (an expunge held back), carries the command's report
// until the view reaches that head.
func (sess *session) carryReported(sel *selection) {
	told, head := sel.v.Position()
	for uid, c := range sess.carried {
		if c.until <= told {
			delete(sess.carried, uid)
		}
	}
	if told < head && len(sess.carried)+len(sess.reported) <= maxCarried {
		if sess.carried == nil && len(sess.reported) > 0 {
			sess.carried = make(map[imap.UID]carriedFlags, len(sess.reported))
		}
		for uid, f := range sess.reported {
			if c, ok := sess.carried[uid]; !ok || c.until <= head {
				sess.carried[uid] = carriedFlags{flags: f, until: head}
			}
		}
	}
	if len(sess.carried) == 0 {
		sess.carried = nil // an idle session keeps no buckets
	}
}
