package proxy

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
)

// clientConn is the connection imapserver is given: idlemux's own command
// reader in front of imapserver's parser. It frames every command itself
// (line and literals, with limits) before imapserver sees a byte, so a
// literal's content can never be taken for a command, whatever imapserver
// refuses or gives up on; it answers what imapserver would get wrong
// (malformed heads, literals over a limit, STARTTLS, the pre-login
// capabilities), and follows imapserver's output just enough to know when
// a command was answered and when a continuation line is asked for.
type clientConn struct {
	l *listener

	in inbuf // read only by imapserver's connection goroutine

	authenticated atomic.Bool            // set by a successful login
	caps          atomic.Pointer[string] // postLoginCaps of the account, set by a successful login
	appendLimit   func() uint32          // the session's, so both sides agree
	onFailedLogin func()                 // counts a refusal as a failed login; set by the session

	mu        sync.Mutex
	conn      net.Conn // the transport: TCP (maybe PROXY), or TLS
	isTLS     bool
	deflate   *deflateConn // set by COMPRESS DEFLATE (cmdcompress.go): conn since then
	sessLog   *zap.Logger  // the session's, with its user, set at login
	greeted   bool
	cur       *framed // the command imapserver is reading or running
	answered  bool    // imapserver wrote cur's tagged response
	cont      bool    // imapserver asked for a continuation line
	lineStart bool    // the next byte imapserver writes starts a line
	partial   []byte  // the start of a line imapserver wrote in pieces
	askedCaps bool    // the client sent CAPABILITY before login
	ownStatus bool    // the running STATUS names the selected mailbox (resporder.go)
	cs        condstoreState
	qr        qresyncState
}

func newClientConn(l *listener, c net.Conn, isTLS bool) *clientConn {
	return newClientConnFor(l, c, isTLS, func() uint32 { return uint32(l.s.dyn().cfg.Limits.AppendLimit) })
}

// newClientConnFor is newClientConn with the source of append_limit.
func newClientConnFor(l *listener, c net.Conn, isTLS bool, appendLimit func() uint32) *clientConn {
	cc := &clientConn{l: l, conn: c, isTLS: isTLS, lineStart: true, appendLimit: appendLimit}
	cc.in.src = c
	return cc
}

// transportOf returns the connection under a clientConn.
func transportOf(c net.Conn) net.Conn {
	if cc, ok := c.(*clientConn); ok {
		return cc.transport()
	}
	return c
}

// plainTransport returns the connection under a clientConn that speaks
// no TLS, nil otherwise: the idle fast path writes to it directly (under
// COMPRESS too: it frames its bytes through deflateOf's writeFast).
func plainTransport(c net.Conn) net.Conn {
	if cc, ok := c.(*clientConn); ok {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if cc.isTLS {
			return nil
		}
		if cc.deflate != nil {
			return cc.deflate.Conn
		}
		return cc.conn
	}
	return c
}

// deflateOf returns the compressing transport of a clientConn under
// COMPRESS, nil otherwise.
func deflateOf(c net.Conn) *deflateConn {
	if cc, ok := c.(*clientConn); ok {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return cc.deflate
	}
	return nil
}

func (cc *clientConn) transport() net.Conn {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.conn
}

// authAllowed: LOGIN and AUTHENTICATE need TLS unless the listener says
// otherwise (RFC 3501 6.2.3, 11.1).
func (cc *clientConn) authAllowed() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.isTLS || cc.l.cfg.InsecureAuth
}

func (cc *clientConn) canStartTLS() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.l.cfg.TLS == config.TLSStartTLS && !cc.isTLS && !cc.authenticated.Load()
}

// Read gives imapserver the client's commands, framed. An idle client's
// goroutine waits here for its next command, in this small frame, reading
// into imapserver's own buffer: an idle client holds no buffer of the
// reader's (inbuf is pooled) and adds no deep frames to its stack.
func (cc *clientConn) Read(p []byte) (int, error) {
	if cc.in.buffered() == 0 && !cc.handingOver() {
		// inbuf.wait, by hand: one frame less under the blocked read.
		n, err := cc.in.src.Read(p)
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return 0, err
		}
		cc.in.hold(p[:n])
	}
	return cc.readFramed(p)
}

// handingOver reports whether part of a command is left to hand over.
func (cc *clientConn) handingOver() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.cur != nil && !cc.answered && cc.cur.remaining()
}

func (cc *clientConn) readFramed(p []byte) (int, error) {
	for {
		cc.mu.Lock()
		cur, answered, cont := cc.cur, cc.answered, cc.cont
		cc.mu.Unlock()
		if cur != nil && cur.remaining() {
			if !answered {
				return cur.read(p)
			}
			// imapserver answered without reading the whole command
			// (a syntax error before a literal): the rest is dropped,
			// never parsed as the next command.
			cc.l.log.Debug("dropping the unread rest of an answered command", zap.String("tag", cur.tag))
		}
		if cur != nil {
			cur.close()
		}
		if cur != nil && cont && !answered {
			line, err := cc.readContinuation(p)
			if err != nil {
				return 0, err
			}
			cc.setCur(&framed{cmdHead: cur.cmdHead, head: line})
			continue
		}
		cc.setCur(nil)
		if err := cc.in.wait(p); err != nil {
			return 0, err
		}
		f, reply, err := cc.frame()
		if err == nil && reply == nil {
			var announce string
			if reply, announce = cc.takeCondstore(f); announce != "" {
				err = cc.writeLocal(announce)
			}
			if reply == nil && err == nil {
				reply, err = cc.local(f)
			}
		}
		cc.in.release()
		if err != nil {
			if f != nil {
				f.close()
			}
			return 0, err
		}
		if reply == nil {
			cc.setCur(f)
			continue
		}
		if f != nil {
			f.close()
		}
		if reply.failedLogin && cc.onFailedLogin != nil {
			cc.onFailedLogin()
		}
		if reply.line != "" {
			if err := cc.writeLocal(reply.line + "\r\n"); err != nil {
				return 0, err
			}
		}
		if reply.bye {
			cc.Close()
			return 0, net.ErrClosed
		}
	}
}

// running names the command imapserver is running ("" between commands).
func (cc *clientConn) running() string {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cur == nil {
		return ""
	}
	return cc.cur.name
}

// appendBinary reports whether the APPEND imapserver is running came
// with its message as a literal8, which imapserver does not say.
func (cc *clientConn) appendBinary() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.cur != nil && cc.cur.name == "APPEND" && cc.cur.binary
}

func (cc *clientConn) setCur(f *framed) {
	cc.mu.Lock()
	cc.cur, cc.answered, cc.cont, cc.ownStatus = f, false, false, false
	cc.cs.statusDue, cc.cs.searchDue = false, false
	cc.qr.selectLines, cc.qr.vanishedHighest, cc.cs.sent = nil, 0, 0
	cc.mu.Unlock()
}

// maxContinuation bounds a continuation line (an AUTHENTICATE response, or
// IDLE's DONE): imapserver reads it with a 4 KiB buffer and takes the rest
// of a longer one for a command.
const maxContinuation = 4000

// readContinuation reads one continuation line, as it is: no literal is
// read from it (RFC 3501 7.5: the client answers a "+" with a line). A
// line too long for imapserver is dropped and replaced with "*", which
// cancels an AUTHENTICATE (RFC 3501 6.2.2) and ends an IDLE with BAD.
func (cc *clientConn) readContinuation(p []byte) ([]byte, error) {
	if err := cc.in.wait(p); err != nil {
		return nil, err
	}
	line, li, err := cc.readLine(make([]byte, 0, 64), maxContinuation)
	cc.in.release()
	if err != nil {
		return nil, err
	}
	if li.overflow {
		line = append(line[:0], '*')
	}
	return append(line, '\r', '\n'), nil
}

// Write passes imapserver's output on, following it (see observe).
func (cc *clientConn) Write(p []byte) (int, error) {
	cc.mu.Lock()
	if !cc.greeted {
		cc.greeted = true
		if bytes.HasPrefix(p, []byte("* OK [CAPABILITY ")) {
			// imapserver cannot know what the reader adds (STARTTLS,
			// LOGINDISABLED): the greeting carries the reader's list.
			conn := cc.conn
			cc.mu.Unlock()
			g := cc.greeting()
			if _, err := conn.Write([]byte(g)); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	out := cc.parserRefusal(p)
	out = cc.capabilityLine(out)
	if cc.lineStart && cc.cur != nil && !cc.answered {
		switch {
		case cc.cur.name == "SEARCH" || cc.cur.sub == "SEARCH":
			out = esearchOrder(out)
			out = cc.searchModSeqItem(out)
		case cc.cur.name == "SELECT" || cc.cur.name == "EXAMINE":
			out = cc.highestModSeqLine(out)
		case cc.cur.name == "STATUS":
			out = statusOrder(out)
			out = cc.statusModSeqItem(out)
			if cc.ownStatus {
				out = ownStatusCode(out, cc.cur.tag)
			}
		}
		if cc.qr.vanishedHighest != 0 && cc.cur.name != "SELECT" && cc.cur.name != "EXAMINE" {
			out = cc.vanishedHighestCode(out) // qresync.go
		}
	}
	cc.observe(p)
	conn := cc.conn
	cc.mu.Unlock()
	if _, err := conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// parserRefusal turns imapserver's "NO [SERVERBUG] Internal server error"
// for the running command into Dovecot's answer. imapserver answers so
// when its own parser fails on what the client sent (a bad sequence set,
// search key or date: Dovecot answers BAD; for the commands of
// mailboxNameOnly, a name that is not valid modified UTF-7), never for
// idlemux's sessions (session.fail maps every error): the client's
// mistake is not the server's bug (RFC 5530). cc.mu is held.
func (cc *clientConn) parserRefusal(p []byte) []byte {
	if cc.cur == nil || cc.answered || !cc.lineStart {
		return p
	}
	tag := cc.cur.tag
	if len(p) != len(tag)+len(internalErrorAnswer) || string(p[:len(tag)]) != tag || string(p[len(tag):]) != internalErrorAnswer {
		return p
	}
	name := cc.cur.name
	if cc.cur.sub != "" {
		name += " " + cc.cur.sub
	}
	switch mailboxNameOnly[name] {
	case "list":
		// Dovecot lists nothing for a pattern that is not mUTF-7.
		return []byte(tag + " OK " + name + " completed\r\n")
	case "name":
		return []byte(tag + " NO Mailbox name is not valid mUTF-7\r\n")
	}
	return []byte(tag + " BAD Error in IMAP command " + name + ": Invalid arguments\r\n")
}

// capabilityLine puts the reader's post-login list (postLoginCaps) in
// place of imapserver's in the lists imapserver writes after login: the
// CAPABILITY response and the [CAPABILITY ...] code of a login's tagged
// OK (RFC 3501 7.1), with Dovecot's text, or, as Dovecot answers a client
// that asked for CAPABILITY before login, an untagged CAPABILITY before a
// plain OK. Before login the lists are the reader's own (cmdlocal.go).
// cc.mu is held.
func (cc *clientConn) capabilityLine(p []byte) []byte {
	up := cc.caps.Load()
	if up == nil || !cc.lineStart || cc.cur == nil || cc.answered || bytes.IndexByte(p, '\n') != len(p)-1 {
		return p
	}
	caps := withReaderCaps(*up, cc.l.s.dyn().cfg.Compress, cc.appendLimit())
	switch cc.cur.name {
	case "CAPABILITY":
		if bytes.HasPrefix(p, []byte("* CAPABILITY ")) {
			return []byte("* CAPABILITY " + caps + "\r\n")
		}
	case "LOGIN", "AUTHENTICATE":
		if !bytes.HasPrefix(p, []byte(cc.cur.tag+" OK [CAPABILITY ")) {
			break
		}
		if cc.askedCaps {
			// Dovecot's way with a client that asked for CAPABILITY
			// before login: it may ignore response codes.
			return []byte("* CAPABILITY " + caps + "\r\n" + cc.cur.tag + " OK Logged in\r\n")
		}
		return []byte(cc.cur.tag + " OK [CAPABILITY " + caps + "] Logged in\r\n")
	}
	return p
}

// mailboxNameOnly names the commands whose only argument imapserver can
// fail on with an internal error is a mailbox name or LIST pattern that
// is not valid modified UTF-7 (RFC 3501 5.1.3); the rest of their syntax
// fails as a decoder error, which imapserver answers BAD itself.
var mailboxNameOnly = map[string]string{
	"LIST": "list", "LSUB": "list",
	"SELECT": "name", "EXAMINE": "name", "CREATE": "name", "DELETE": "name", "RENAME": "name",
	"SUBSCRIBE": "name", "UNSUBSCRIBE": "name", "STATUS": "name",
}

// internalErrorAnswer is imapserver's answer to a handler's error it
// cannot classify, after the tag.
const internalErrorAnswer = " NO [SERVERBUG] Internal server error\r\n"

// observe finds, in what imapserver writes while a command runs, the lines
// that start with "+" (it waits for a continuation line) and the one that
// starts with the command's tag (it answered). Literal data in a response
// can look like either, but only once imapserver has read the whole
// command, where neither changes what the reader does. cc.mu is held.
func (cc *clientConn) observe(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if cc.lineStart && cc.cur != nil && !cc.answered {
			lineEnd := len(p)
			if i >= 0 {
				lineEnd = i
			}
			need := len(cc.cur.tag) + 1
			if len(cc.partial) == 0 && lineEnd >= need {
				cc.judge(p[:need])
			} else {
				take := min(lineEnd, need-len(cc.partial))
				cc.partial = append(cc.partial, p[:take]...)
				if len(cc.partial) < need && i < 0 {
					return // the line's start goes on in the next write
				}
				cc.judge(cc.partial)
				cc.partial = cc.partial[:0]
			}
		}
		if i < 0 {
			cc.lineStart = false
			return
		}
		p = p[i+1:]
		cc.lineStart = true
	}
}

// judge reads the start of a line imapserver wrote.
func (cc *clientConn) judge(head []byte) {
	if len(head) > 0 && head[0] == '+' {
		cc.cont = true
	}
	tag := cc.cur.tag
	if len(head) > len(tag) && string(head[:len(tag)]) == tag && head[len(tag)] == ' ' {
		cc.answered, cc.cont = true, false
	}
}

// writeLocal writes a line the reader answers itself, bounded like
// imapserver's own responses.
func (cc *clientConn) writeLocal(s string) error {
	c := cc.transport()
	c.SetWriteDeadline(time.Now().Add(localWriteTimeout))
	_, err := c.Write([]byte(s))
	c.SetWriteDeadline(time.Time{})
	return err
}

// command returns the text of the command imapserver is running, as the
// reader framed it (literals non-synchronizing, inline); nil if none.
func (cc *clientConn) command() []byte {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cur == nil {
		return nil
	}
	if cc.cur.relay != nil {
		return cc.cur.relay
	}
	return cc.cur.head
}

// localWriteTimeout matches imapserver's per-response write timeout.
const localWriteTimeout = 30 * time.Second

func (cc *clientConn) Close() error {
	return cc.transport().Close()
}

// finish releases the command imapserver left unread when the
// connection ended (imapserver reads no more: its goroutine is gone).
func (cc *clientConn) finish() {
	cc.mu.Lock()
	cur := cc.cur
	cc.cur = nil
	cc.mu.Unlock()
	if cur != nil {
		cur.close()
	}
}

func (cc *clientConn) LocalAddr() net.Addr                { return cc.transport().LocalAddr() }
func (cc *clientConn) RemoteAddr() net.Addr               { return cc.transport().RemoteAddr() }
func (cc *clientConn) SetDeadline(t time.Time) error      { return cc.transport().SetDeadline(t) }
func (cc *clientConn) SetReadDeadline(t time.Time) error  { return cc.transport().SetReadDeadline(t) }
func (cc *clientConn) SetWriteDeadline(t time.Time) error { return cc.transport().SetWriteDeadline(t) }
