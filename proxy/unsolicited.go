package proxy

import (
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/fanout"
)

// Everything idlemux writes to a client outside a command's own response
// is encoded and written here:
//
//   - the mailbox's changes from the model (EXISTS, EXPUNGE, FETCH FLAGS,
//     and the mailbox's FLAGS with its PERMANENTFLAGS), whether the idle
//     fast path's dispatcher, IDLE on the ordinary path or the updates
//     after a command (Poll) deliver them: one encoder, appendUpdates, so
//     a client sees the same bytes whichever path delivered them;
//   - the keepalive (`* OK Still here`);
//   - BYE, whose bytes alone imapserver writes (see bye).
//
// The writer, writeUnsolicited, writes whole responses to the transport
// (writeAround: past the command reader, which follows only imapserver's
// own output), within unsolicitedWriteTimeout, under writeMu. That is safe
// around imapserver because it flushes each response whole (its encoder
// flushes at every CRLF): Poll runs on the connection goroutine between a
// command's last response and its tagged status, and while the client
// idles imapserver writes nothing until the line after `+ idling`.
//
// New unsolicited responses get a kind in fanout.Update and a case in
// appendUpdates: `* n RECENT` (RFC 3501 7.3.2) and `* VANISHED` (RFC 7162
// 3.2.10) belong there when the model carries them.

// unsolicitedWriteTimeout bounds one write of unsolicited responses to a
// client that does not read, as imapserver bounds its own (30 s).
const unsolicitedWriteTimeout = 30 * time.Second

// permittedText and readOnlyText are Dovecot's texts for PERMANENTFLAGS.
const (
	permittedText = "Flags permitted."
	readOnlyText  = "Read-only mailbox."
)

// permSource gives a session's PERMANENTFLAGS for the mailbox's FLAGS
// (nil when read-only).
type permSource interface {
	permanent(flags []imap.Flag) []imap.Flag
}

// appendUpdates encodes a session's updates. ps gives the PERMANENTFLAGS
// that follow a mailbox FLAGS change; a FETCH whose flags skip already
// holds (a command reported them) is left out. A FETCH carries the UID,
// as imapserver's UpdateWriter wrote it before.
func appendUpdates(b []byte, ups []fanout.Update, ps permSource, skip map[imap.UID][]imap.Flag) []byte {
	for _, u := range ups {
		switch u.Kind {
		case fanout.UpdateExpunge:
			b = appendNumbered(b, u.Seq, " EXPUNGE\r\n")
		case fanout.UpdateExists:
			b = appendNumbered(b, u.Seq, " EXISTS\r\n")
		case fanout.UpdateRecent:
			b = appendNumbered(b, u.Seq, " RECENT\r\n")
		case fanout.UpdateFlags:
			if prev, done := skip[u.UID]; done && fanout.FlagsEqual(prev, u.Flags) {
				continue
			}
			b = appendFlagsUpdate(b, u, ps)
		case fanout.UpdateMailboxFlags:
			b = appendMailboxFlags(b, u.Flags, ps.permanent(u.Flags))
		}
	}
	return b
}

func appendNumbered(b []byte, n uint32, rest string) []byte {
	b = append(b, "* "...)
	b = strconv.AppendUint(b, uint64(n), 10)
	return append(b, rest...)
}

// appendFetchFlags encodes "* seq FETCH (UID uid FLAGS (...))"; uid 0
// leaves the UID out.
func appendFetchFlags(b []byte, seq uint32, uid imap.UID, flags []imap.Flag) []byte {
	b = appendNumbered(b, seq, " FETCH (")
	if uid != 0 {
		b = append(b, "UID "...)
		b = strconv.AppendUint(b, uint64(uid), 10)
		b = append(b, ' ')
	}
	b = append(b, "FLAGS "...)
	b = appendFlagList(b, flags)
	return append(b, ")\r\n"...)
}

// appendMailboxFlags encodes the mailbox's FLAGS and PERMANENTFLAGS as
// Dovecot sends them when a new keyword appears (RFC 3501 7.2.6, 7.1):
// `* FLAGS (...)`, then `* OK [PERMANENTFLAGS (...)] Flags permitted.`,
// or `* OK [PERMANENTFLAGS ()] Read-only mailbox.` when perm is nil.
func appendMailboxFlags(b []byte, flags, perm []imap.Flag) []byte {
	b = append(b, "* FLAGS "...)
	b = appendFlagList(b, flags)
	b = append(b, "\r\n* OK [PERMANENTFLAGS "...)
	b = appendFlagList(b, perm)
	b = append(b, "] "...)
	if perm == nil {
		b = append(b, readOnlyText...)
	} else {
		b = append(b, permittedText...)
	}
	return append(b, "\r\n"...)
}

// appendFlagList encodes a parenthesized flag list. A flag that is not an
// atom, a `\`-flag or `\*` (RFC 3501 9, flag) is left out rather than
// written: nothing from the model can end a line or open a literal.
func appendFlagList(b []byte, flags []imap.Flag) []byte {
	b = append(b, '(')
	first := true
	for _, f := range flags {
		if !validFlag(string(f)) {
			continue
		}
		if !first {
			b = append(b, ' ')
		}
		first = false
		b = append(b, f...)
	}
	return append(b, ')')
}

// validFlag: "\*", or an optional backslash and one or more ATOM-CHARs
// (RFC 3501 9: flag-keyword is an atom, flag-extension "\" atom).
func validFlag(f string) bool {
	if f == `\*` {
		return true
	}
	if len(f) > 0 && f[0] == '\\' {
		f = f[1:]
	}
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		switch c := f[i]; {
		case c <= 0x20 || c >= 0x7f:
			return false
		case c == '(' || c == ')' || c == '{' || c == '%' || c == '*' || c == '"' || c == '\\' || c == ']':
			return false
		}
	}
	return true
}

// permanentFlags is the PERMANENTFLAGS a session reports for the mailbox's
// flags and the upstream's PERMANENTFLAGS: none when read-only (RFC 3501
// 7.1); else the upstream's, or, since the watcher EXAMINEs (and a
// read-only mailbox reports none), the mailbox's flags and new keywords
// (`\*`), as Dovecot reports for a read-write SELECT.
func permanentFlags(flags, upstream []imap.Flag, readOnly bool) []imap.Flag {
	switch {
	case readOnly:
		return nil
	case len(upstream) > 0:
		return upstream
	}
	perm := make([]imap.Flag, 0, len(flags)+1)
	for _, f := range flags {
		if f != "\\Recent" {
			perm = append(perm, f)
		}
	}
	return append(perm, imap.FlagWildcard)
}

// permanent is the selection's PERMANENTFLAGS for a FLAGS list, with the
// upstream's as the model holds them now.
func (sel *selection) permanent(flags []imap.Flag) []imap.Flag {
	_, up := sel.w.Mailbox().MailboxFlags()
	return permanentFlags(flags, up, sel.readOnly)
}

// unsolicitedBufs holds encoding buffers between deliveries: an idle
// session keeps none of its own.
var unsolicitedBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuf keeps a rare huge batch (a STORE on a whole mailbox) from
// staying in the pool.
const maxPooledBuf = 64 << 10

// deliverUpdates encodes ups for the session and writes them in one write.
func (sess *session) deliverUpdates(sel *selection, ups []fanout.Update) error {
	bp := unsolicitedBufs.Get().(*[]byte)
	b := appendSessionUpdates((*bp)[:0], ups, sel, sess.reported, sess.vanishedOn())
	err := sess.writeUnsolicited(b)
	if cap(b) <= maxPooledBuf {
		*bp = b[:0]
		unsolicitedBufs.Put(bp)
	}
	return err
}

// tellMailboxFlags writes the mailbox's FLAGS and PERMANENTFLAGS if they
// changed since the session was told, ahead of a command's own response
// that may show a new keyword: Dovecot tells the actor of a STORE so,
// .SILENT included (RFC 3501 7.2.6).
func (sess *session) tellMailboxFlags() error {
	flags, ok := sess.sel.v.TakeMailboxFlags()
	if !ok {
		return nil
	}
	return sess.writeUnsolicited(appendMailboxFlags(nil, flags, sess.sel.permanent(flags)))
}

// sendStillHere writes the keepalive (RFC 2177 3).
func (sess *session) sendStillHere() error {
	return sess.writeUnsolicited([]byte(stillHere))
}

// writeUnsolicited writes b, whole responses, around imapserver within
// unsolicitedWriteTimeout, under writeMu. What the idle fast path could
// not write of its last batch goes first, so nothing comes between the
// halves of a cut line. A failed write closes the connection: a line cut
// in half cannot be followed by anything.
func (sess *session) writeUnsolicited(b []byte) error {
	sess.writeMu.Lock()
	defer sess.writeMu.Unlock()
	if f := sess.fast; f != nil {
		if err := sess.flushRest(f, unsolicitedWriteTimeout); err != nil {
			return err
		}
	}
	if len(b) == 0 {
		return nil
	}
	if err := sess.writeRaw(b, unsolicitedWriteTimeout); err != nil {
		sess.conn.NetConn().Close()
		return err
	}
	return nil
}

// byeWriteTimeout bounds how long a BYE may take to go out.
const byeWriteTimeout = 2 * time.Second

// bye sends "* BYE text" and closes the connection, once.
//
// Its bytes are imapserver's (Conn.Bye): a BYE may come from another
// goroutine (shutdown, the login timer) while imapserver streams a
// response (a FETCH literal), and only imapserver's encoder lock orders
// the BYE after it. writeMu still orders it with everything above.
func (sess *session) bye(text string) {
	sess.byeOnce.Do(func() {
		sess.byeDone.Store(true)
		sess.log.Info("closing session", zap.String("reason", text))
		// The BYE may wait behind a TLS handshake that never ends (a
		// client silent after STARTTLS), which no write deadline covers:
		// past byeWriteTimeout the connection is closed without it.
		t := time.AfterFunc(byeWriteTimeout, func() { sess.conn.NetConn().Close() })
		defer t.Stop()
		sess.writeMu.Lock()
		defer sess.writeMu.Unlock()
		if f := sess.fast; f != nil && sess.flushRest(f, byeWriteTimeout) != nil {
			return // a fast-path line cut short could not go out whole first
		}
		sess.conn.Bye(text)
	})
}
