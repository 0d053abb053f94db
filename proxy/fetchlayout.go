package proxy

import "strings"

// Layouts: the item names of an upstream answer, in its order. Learnt
// per upstream (its route key: name and reload generation, so a reload
// that points a name at another server starts afresh, as the cache's
// values do) and item list as the client wrote it (fetchCache.learn):
// two servers may order the same items differently (RFC 3501 7.4.2 says
// nothing of the order), so nothing learnt of one is used for another.
// From them the
// cache also learns which name answers which item ("BODY.PEEK[HEADER]"
// is answered as "BODY[HEADER]"), so that the same items in another
// order, as go-imap's client writes them (its own map order), are
// answered without the upstream too: Dovecot writes the buffered items
// (bufferedItems: FLAGS, INTERNALDATE, RFC822.SIZE) first, in the
// request's order, then the others in the request's order
// (fetchitems.go). A learnt answer that does not follow that rule
// teaches no names. Names are used to derive a layout only for an
// upstream that has shown the rule at work (fc.ruleShown): an answer
// that put a buffered item the client asked after another item first.
// A server that answers in the request's order, or in a fixed order of
// its own, may fit the rule by chance on the lists it was asked, and
// would then be answered in an order it never uses.

// learnNames records which name answers each of atts, when names (an
// answer's, UID left out) follow Dovecot's order for them: each name is
// the one its item is answered with (answers). fc.mu is held.
func (fc *fetchCache) learnNamesLocked(up string, atts []fetchAtt, names []string) {
	order := dovecotOrder(atts)
	if order == nil || len(order) != len(names) {
		return
	}
	for i, a := range order {
		if !answers(a, names[i]) {
			return
		}
	}
	if len(fc.attNames)+len(order) > maxLayouts {
		clear(fc.attNames)
		clear(fc.ruleShown)
	}
	for i, a := range order {
		fc.attNames[layoutKey{up, a.text()}] = names[i]
	}
	if reorders(atts) {
		fc.ruleShown[up] = true
	}
}

// reorders says whether Dovecot's rule moves an item of atts: a buffered
// item comes after another (UID aside).
func reorders(atts []fetchAtt) bool {
	other := false
	for _, a := range atts {
		switch {
		case a.name == "UID" && a.section == nil:
		case isBuffered(a):
			if other {
				return true
			}
		default:
			other = true
		}
	}
	return false
}

// deriveLocked returns the layout of atts from the names learnt for each,
// in Dovecot's order; nil when one is not known, two share a name, or
// they are several and up has not shown the rule at work.
// fc.mu is held.
func (fc *fetchCache) deriveLocked(up string, atts []fetchAtt) []string {
	order := dovecotOrder(atts)
	if order == nil || len(order) > 1 && !fc.ruleShown[up] { // one item has one order
		return nil
	}
	names := make([]string, len(order))
	for i, a := range order {
		n, ok := fc.attNames[layoutKey{up, a.text()}]
		if !ok || hasString(names[:i], n) {
			return nil
		}
		names[i] = n
	}
	return names
}

// dovecotOrder returns atts but UID in the order Dovecot answers them:
// buffered ones first. nil for a macro or MODSEQ, whose answers do not
// map one to one.
func dovecotOrder(atts []fetchAtt) []fetchAtt {
	var first, rest []fetchAtt
	for _, a := range atts {
		switch {
		case a.name == "UID" && a.section == nil:
		case a.name == "ALL" || a.name == "FAST" || a.name == "FULL" || a.name == "MODSEQ":
			return nil
		case isBuffered(a):
			first = append(first, a)
		default:
			rest = append(rest, a)
		}
	}
	if len(first)+len(rest) == 0 {
		return nil
	}
	return append(first, rest...)
}

func isBuffered(a fetchAtt) bool { return a.section == nil && bufferedItems[a.name] }

// answers says whether name can be the answer's name for a (RFC 3501
// 7.4.2): a section-less item answers with its own name, a section with
// its name less .PEEK and a section. Its section's spelling is the
// upstream's, which is why names are learnt at all.
func answers(a fetchAtt, name string) bool {
	if a.section == nil {
		return name == a.name
	}
	return strings.HasPrefix(name, strings.TrimSuffix(a.name, ".PEEK")+"[")
}
