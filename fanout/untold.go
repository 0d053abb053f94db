package fanout

import "github.com/emersion/go-imap/v2"

// UntoldFlags returns which of uids had their flags changed in the model
// after the view's cursor (the session was not told yet), and each one's
// flags in the model now. A session's STORE .SILENT needs both: it may
// stay silent about a message only if nothing but the STORE changed it
// since the session was last told (RFC 3501 6.4.6).
func (v *View) UntoldFlags(uids imap.UIDSet) (untold map[imap.UID]bool, flags map[imap.UID][]imap.Flag) {
	m := v.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	untold = make(map[imap.UID]bool)
	if c := v.cursor.Load(); c >= m.base {
		for _, ch := range m.log[c-m.base:] {
			if ch.kind == changeFlags && uids.Contains(ch.uids[0]) {
				untold[ch.uids[0]] = true
			}
		}
	}
	flags = make(map[imap.UID][]imap.Flag)
	for _, r := range uids {
		lo, _ := m.index(r.Start)
		for i := lo; i < len(m.uids) && (r.Stop == 0 || m.uids[i] <= r.Stop); i++ {
			flags[m.uids[i]] = m.flags[i]
		}
	}
	return untold, flags
}
