package proxy

import (
	"strconv"

	"github.com/emersion/go-imap/v2"
)

// FETCH of FLAGS, UID and MODSEQ, with or without (CHANGEDSINCE m) (RFC
// 7162 3.1.4, 3.1.4.1), answered from the model under the same rule as
// FLAGS alone (fetchlocal.go): only while the model is current and the
// view caught up, and only when the model knows the MODSEQ of every
// message named; otherwise the upstream answers, as before. This is the
// command a CONDSTORE client resynchronises with. Dovecot's answer, which
// this one is: the items in the client's order, each once, UID where the
// client's answer has it (first for UID FETCH), and MODSEQ last when
// CHANGEDSINCE implies it; with CHANGEDSINCE, only the messages whose
// MODSEQ is above m.

// modseqLayout returns the answer's items (FLAGS, MODSEQ) in the order
// Dovecot writes them for atts, or false when atts ask for anything else
// or name an item twice.
func modseqLayout(atts []fetchAtt, changedSince bool) ([]string, bool) {
	var layout []string
	seen := map[string]bool{}
	for _, a := range atts {
		if a.section != nil || a.partial != nil || seen[a.name] {
			return nil, false
		}
		seen[a.name] = true
		switch a.name {
		case "UID":
		case "FLAGS", "MODSEQ":
			layout = append(layout, a.name)
		default:
			return nil, false
		}
	}
	if changedSince && !seen["MODSEQ"] {
		layout = append(layout, "MODSEQ")
	}
	return layout, true
}

// fetchModSeqLocal answers the FETCH rl was set up for from the model
// when it can (done).
func (sess *session) fetchModSeqLocal(rl *fetchRelay, atts []fetchAtt, expunged []imap.UID) (done bool, err error) {
	cc := sess.reader()
	if cc == nil {
		return false, nil
	}
	since, has, _ := cc.fetchCondstoreOf()
	layout, ok := modseqLayout(atts, has)
	if !ok || len(expunged) > 0 {
		return false, nil
	}
	sel := sess.sel
	if !sel.v.CaughtUp() || !sess.modelCurrent(sel.w, sel.prevMark, "FETCH") || !sel.v.CaughtUp() {
		return false, nil
	}
	hits := &localHits{layout: layout}
	for _, m := range sel.v.Members(rl.uids) {
		// One read: a post between two would pair new flags with the
		// old MODSEQ.
		flags, ms, ok := sel.v.FlagsModSeq(m.UID)
		if ms == 0 || !ok {
			return false, nil // unknown, or gone meanwhile: the upstream answers
		}
		if has && ms <= since {
			continue
		}
		h := localHit{seq: m.Seq, uid: m.UID, flags: flags, vals: make([][]byte, len(layout))}
		for i, name := range layout {
			if name == "MODSEQ" {
				h.vals[i] = strconv.AppendUint([]byte{'('}, ms, 10)
				h.vals[i] = append(h.vals[i], ')')
			}
		}
		hits.list = append(hits.list, h)
	}
	if len(hits.list) == 0 {
		sess.s.metrics.answeredLocally("FETCH")
		return true, nil
	}
	return true, sess.writeLocal(hits, rl.req)
}
