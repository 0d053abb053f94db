package proxy

import (
	"slices"
	"strconv"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
)

// A FETCH is answered without the upstream, in whole or in part (issue
// 11), when every item it asks for is either
//
//   - model data, FLAGS and UID: the watcher's model holds them, current
//     while its own connection idles on the mailbox (RFC 2177) and the
//     session was told every change it logged, so what the session would
//     get from the upstream is what the model says; or
//   - immutable message data (RFC 3501 2.3: what a UID names within one
//     UIDVALIDITY never changes): ENVELOPE, BODYSTRUCTURE, BODY,
//     RFC822.SIZE, INTERNALDATE, RFC822.HEADER and the sections of
//     BODY.PEEK and BINARY.PEEK (no partial), which the shared cache
//     (fetchcache.go) holds as the upstream's own bytes.
//
// The messages the cache lacks go upstream in one UID FETCH with the
// client's items, relayed as ever (fetchrelay.go), recorded on the way
// (fetchcapture.go); the others are written among them in sequence order.
// Anything else (a body without PEEK sets \Seen, a partial, MODSEQ
// beside other items (FLAGS, UID and MODSEQ alone: condstore_fetchlocal.go),
// RFC822, FLAGS of a polled mailbox not polled since the session's
// previous command: modelCurrent) takes the relay unchanged.

type fetchKind uint8

const (
	kindUpstream fetchKind = iota // the relay, as before
	kindModel                     // FLAGS and UID only
	kindCache                     // immutable items, FLAGS and UID
)

// classifyFetch says how atts can be answered; needFlags when FLAGS is
// asked, itself or in a macro (RFC 3501 6.4.5: ALL, FAST, FULL).
func classifyFetch(atts []fetchAtt, list, readOnly bool) (kind fetchKind, needFlags bool) {
	kind = kindModel
	for _, a := range atts {
		switch {
		case a.partial != nil:
			return kindUpstream, false
		case a.name == "UID" && a.section == nil:
		case a.name == "FLAGS" && a.section == nil:
			if needFlags {
				return kindUpstream, false // asked twice: the upstream decides
			}
			needFlags = true
		case (a.name == "ALL" || a.name == "FAST" || a.name == "FULL") && !list:
			needFlags, kind = true, kindCache
		case a.section == nil && immutableItems[a.name]:
			kind = kindCache
		case a.section != nil && (a.name == "BODY.PEEK" || a.name == "BINARY.PEEK" || a.name == "BINARY.SIZE" ||
			readOnly && (a.name == "BODY" || a.name == "BINARY")): // asked with .PEEK under EXAMINE (fetchitems.go)
			kind = kindCache
		default:
			return kindUpstream, false
		}
	}
	return kind, needFlags
}

// immutableItems are the section-less items a UID's content fixes.
var immutableItems = map[string]bool{"ENVELOPE": true, "BODYSTRUCTURE": true, "BODY": true,
	"RFC822.SIZE": true, "INTERNALDATE": true, "RFC822.HEADER": true}

// localHits are the responses of a FETCH built without the upstream.
type localHits struct {
	layout []string // the answer's item names, in the upstream's order
	list   []localHit
}

// localHit is one message's response: its values by layout position
// (nil for FLAGS), and its flags as the session sees them.
type localHit struct {
	seq   uint32
	uid   imap.UID
	vals  [][]byte
	flags []imap.Flag
}

// appendTo writes h's response as the relay would have written the
// upstream's answer (fetchrelay_items.go): the layout's items in order,
// UID placed where the client's answer has it (fetchRequest.uidAfter
// counts the buffered items before it), FLAGS from the model with the
// session's own \Recent last.
func (lh *localHits) appendTo(b []byte, req *fetchRequest, h *localHit) []byte {
	b = append(b, "* "...)
	b = strconv.AppendUint(b, uint64(h.seq), 10)
	b = append(b, " FETCH ("...)
	n, buffered, uidOut := 0, 0, !req.wantUID
	putUID := func() {
		if n > 0 {
			b = append(b, ' ')
		}
		n++
		b = append(b, "UID "...)
		b = strconv.AppendUint(b, uint64(h.uid), 10)
		uidOut = true
	}
	for i, name := range lh.layout {
		if !uidOut && buffered >= req.uidAfter {
			putUID()
		}
		if n > 0 {
			b = append(b, ' ')
		}
		n++
		if bufferedItems[name] {
			buffered++
		}
		b = append(b, name...)
		b = append(b, ' ')
		if name == "FLAGS" {
			b = appendFlagList(b, h.flags)
		} else {
			b = append(b, h.vals[i]...)
		}
	}
	if !uidOut {
		putUID()
	}
	return append(b, ")\r\n"...)
}

// fetchLocal answers the FETCH rl was set up for from the model and the
// cache when it can (done), or readies rl for the relay: only the
// messages the cache lacks go upstream, and its answer fills the cache.
func (sess *session) fetchLocal(rl *fetchRelay, atts []fetchAtt, kind fetchKind, needFlags bool, expunged []imap.UID) (done bool, err error) {
	sel, fc := sess.sel, sess.s.cache
	if kind == kindCache && fc == nil {
		return false, nil
	}
	// The model answers FLAGS only when it is current (searchlocal.go
	// modelCurrent), asked only of a caught-up view; the view is looked
	// at again after, since a Sync may bring it news.
	caughtUp := len(expunged) == 0 && sel.v.CaughtUp()
	current := needFlags && caughtUp && sess.modelCurrent(sel.w, sel.prevMark, "FETCH")
	caughtUp = caughtUp && sel.v.CaughtUp() // a Sync may have brought news
	if needFlags && !(caughtUp && current) {
		// The FLAGS are the upstream's to give: the whole FETCH goes
		// there, and fills the cache on the way.
		if kind == kindCache {
			rl.capture = sess.fillCapture(fc, rl.req, atts)
		}
		return false, nil
	}
	if kind == kindModel {
		if !caughtUp {
			return false, nil
		}
		return sess.modelAnswer(rl, needFlags)
	}
	members := sel.v.Members(rl.uids)
	var gone []imap.UID // shown to the session, expunged in the model: the upstream answers (RFC 2180 4.1)
	if !caughtUp {
		gone = slices.Concat(expunged, sel.v.ExpungedIn(rl.uids))
	}
	for attempt := 0; ; attempt++ {
		hits, missing := sess.lookup(fc, rl.req, atts, members, needFlags, gone)
		if len(missing) == 0 {
			fc.hits.Add(float64(len(hits.list)))
			return true, sess.writeLocal(hits, rl.req)
		}
		var set imap.UIDSet
		for _, u := range missing {
			set.AddNum(u)
		}
		wait, finish := fc.join(sess.acctKey() + "\x00" + sel.name + "\x00" +
			strconv.FormatUint(uint64(sel.uidValidity), 10) + "\x00" + set.String() + "\x00" + rl.req.items)
		if wait != nil && attempt == 0 {
			// Another session is fetching these very messages: wait for
			// it and look again.
			ctx, cancel := sess.ctx()
			select {
			case <-wait:
			case <-ctx.Done():
			}
			cancel()
			continue
		}
		fc.hits.Add(float64(len(hits.list)))
		fc.misses.Add(float64(len(missing)))
		rl.uids, rl.finish = set, finish
		if len(hits.list) > 0 {
			rl.hits = hits
		}
		rl.capture = sess.fillCapture(fc, rl.req, atts)
		return false, nil
	}
}

// modelAnswer answers a FETCH of FLAGS and UID from the model (done),
// unless a message left it meanwhile: the upstream answers that one.
func (sess *session) modelAnswer(rl *fetchRelay, needFlags bool) (done bool, err error) {
	v := sess.sel.v
	hits := &localHits{}
	if needFlags {
		hits.layout = []string{"FLAGS"}
	}
	for _, m := range v.Members(rl.uids) {
		h := localHit{seq: m.Seq, uid: m.UID}
		if needFlags {
			var ok bool
			if h.flags, ok = v.Flags(m.UID); !ok {
				return false, nil
			}
		}
		hits.list = append(hits.list, h)
	}
	return true, sess.writeLocal(hits, rl.req)
}

// reportedFlags: when the model took in a change while the FETCH read
// its flags (the view is no longer caught up), the flags the answer
// showed count as reported, so the Poll that follows does not tell them
// again (as after STORE); any other change still reaches the client.
func (sess *session) reportedFlags(hits *localHits) {
	if !hasString(hits.layout, "FLAGS") || sess.sel.v.CaughtUp() {
		return
	}
	if sess.reported == nil {
		sess.reported = make(map[imap.UID][]imap.Flag)
	}
	for _, h := range hits.list {
		sess.reported[h.uid] = h.flags
	}
}

// lookup splits members into those the cache answers in full and those
// it lacks (all of them while the request's layout is not known).
func (sess *session) lookup(fc *fetchCache, req *fetchRequest, atts []fetchAtt, members []fanout.Member, needFlags bool, gone []imap.UID) (*localHits, []imap.UID) {
	sel := sess.sel
	hits := &localHits{layout: fc.layout(sess.up.key, req.items, atts)}
	var missing []imap.UID
	usable := hits.layout != nil && hasString(hits.layout, "FLAGS") == needFlags
	key := cacheKey{acct: sess.acctKey(), mailbox: sel.name, uidValidity: sel.uidValidity}
	for _, m := range members {
		ok := usable && !slices.Contains(gone, m.UID)
		var vals [][]byte
		if ok {
			vals = make([][]byte, len(hits.layout))
		}
		for i, name := range hits.layout {
			if !ok {
				break
			}
			if name != "FLAGS" {
				key.uid, key.item = m.UID, name
				vals[i], ok = fc.get(key)
			}
		}
		var flags []imap.Flag
		if ok && needFlags {
			flags, ok = sel.v.Flags(m.UID)
		}
		if !ok {
			missing = append(missing, m.UID)
			continue
		}
		hits.list = append(hits.list, localHit{seq: m.Seq, uid: m.UID, vals: vals, flags: flags})
	}
	return hits, missing
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fillCapture records the relayed answer into the cache (fetchCache.filler).
func (sess *session) fillCapture(fc *fetchCache, req *fetchRequest, atts []fetchAtt) *fetchCapture {
	key := cacheKey{acct: sess.acctKey(), mailbox: sess.sel.name, uidValidity: sess.sel.uidValidity}
	return fc.filler(sess.up.key, key, req.items, atts)
}

// writeLocal writes responses built without the upstream to the client,
// straight to the transport as drainFetch does, each write bounded.
func (sess *session) writeLocal(hits *localHits, req *fetchRequest) error {
	defer sess.reportedFlags(hits)
	sess.writeMu.Lock()
	defer sess.writeMu.Unlock()
	w := deadlineWriter{c: transportOf(sess.conn.NetConn()), d: localWriteTimeout}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	b := (*bp)[:0]
	for i := range hits.list {
		b = hits.appendTo(b, req, &hits.list[i])
		if len(b) >= relayFlushAt || i == len(hits.list)-1 {
			if _, err := w.Write(b); err != nil {
				sess.conn.NetConn().Close() // cut inside a response: cannot resynchronise
				return &clientGone{err}
			}
			b = b[:0]
		}
	}
	sess.s.metrics.answeredLocally("FETCH")
	return nil
}
