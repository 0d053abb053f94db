package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/idlemux/idlemux/internal/imapframe"
	"github.com/idlemux/idlemux/upstream"
)

// LIST and LSUB answers are the upstream's bytes: the session sends the
// client's own command text upstream as a raw command (upstream/rawcmd.go)
// and relays the LIST (or LSUB) responses as they come, so mailbox names
// keep the upstream's quoting and encoding, extended data (CHILDINFO,
// OLDNAME: RFC 5258) its form, and LSUB its own rules (RFC 3501 6.3.9),
// none of which go-imap's decode and re-encode keep. Several patterns
// (RFC 5258 3) stay one command, as the upstream answers it.

// listLiteralMax bounds one literal in a LIST response: a mailbox name.
const listLiteralMax = 64 << 10

// listRelay reads the upstream's answer to one raw LIST or LSUB and keeps
// the responses named name, whole (literals included), up to
// listShareMax bytes; past that the answer is too big to hold or share
// (tooBig): with spill set it is handed to spill, what is held first and
// then every listSpillAt bytes, each batch whole responses, so the asking
// client gets it from this one command in bounded memory; without, the
// rest is read and dropped. Every other untagged response (a pool
// connection's EXISTS, EXPUNGE, FETCH: the watcher reports those) is
// dropped.
type listRelay struct {
	name   []byte
	touch  func()
	out    []byte
	tooBig bool
	// spill writes to the asking client; spillErr is its first error,
	// after which the rest of the answer is read and dropped, so the
	// upstream connection stays in step.
	spill    func([]byte) error
	spillErr error
}

// listSpillAt is the batch a listing too big to hold goes out in.
const listSpillAt = 64 << 10

// run reads up to the line tagged tag and returns its status as
// taggedStatus does: nil for a plain OK, else the upstream's own status.
func (rl *listRelay) run(br *bufio.Reader, tag string) error {
	for {
		line, err := listLine(br)
		if err != nil {
			return err
		}
		if rl.touch != nil {
			rl.touch()
		}
		if bytes.HasPrefix(line, []byte(tag+" ")) {
			return taggedStatus(bytes.TrimRight(line[len(tag)+1:], "\r\n"))
		}
		if !bytes.HasPrefix(line, []byte("* ")) {
			return listErr("unexpected line %q", clip(line))
		}
		name, _, _ := bytes.Cut(line[2:], []byte(" "))
		keep := bytes.EqualFold(name, rl.name)
		start := len(rl.out)
		if err := rl.response(br, line, keep); err != nil {
			return err
		}
		switch {
		case !keep:
		case len(rl.out) > listShareMax && rl.spill == nil:
			rl.out, rl.tooBig = rl.out[:start], true
		case len(rl.out) > listShareMax || rl.tooBig && len(rl.out) >= listSpillAt:
			rl.tooBig = true
			rl.flush()
		}
	}
}

// holding says whether responses are still kept: before the answer is
// too big, or while they spill to a client that takes them.
func (rl *listRelay) holding() bool {
	return !rl.tooBig || rl.spill != nil && rl.spillErr == nil
}

// flush hands what is held to spill (whole responses) and holds nothing.
func (rl *listRelay) flush() {
	if rl.spillErr == nil {
		rl.spillErr = rl.spill(rl.out)
	}
	rl.out = rl.out[:0]
}

// response reads the rest of one untagged response whose first line is
// line: each literal it announces (RFC 3501 4.3) and the line after it.
// keep appends it to out (while the relay is holding).
func (rl *listRelay) response(br *bufio.Reader, line []byte, keep bool) error {
	keep = keep && rl.holding()
	for {
		if keep {
			rl.out = append(rl.out, line...)
		}
		lit, _, ok := imapframe.LiteralMarker(bytes.TrimRight(line, "\r\n"))
		if !ok {
			return nil
		}
		if !lit.Valid || lit.Size > listLiteralMax {
			return listErr("literal %q over %d bytes", clip(line), listLiteralMax)
		}
		n := int(lit.Size)
		if keep {
			start := len(rl.out)
			rl.out = append(rl.out, make([]byte, n)...)
			if _, err := io.ReadFull(br, rl.out[start:]); err != nil {
				return relayEOF(err)
			}
		} else if _, err := br.Discard(n); err != nil {
			return relayEOF(err)
		}
		var err error
		if line, err = listLine(br); err != nil {
			return err
		}
	}
}

// listErr is an answer the relay cannot follow: the upstream connection
// is out of step and is closed (upstream.Conn.Raw).
func listErr(format string, args ...any) error {
	return fmt.Errorf("upstream LIST answer: "+format, args...)
}

// listLine reads one line, CRLF included, within the reader's buffer.
func listLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, listErr("line longer than %d bytes", br.Size())
	}
	if err != nil {
		return nil, relayEOF(err)
	}
	return line, nil
}

// rawCommand returns the client's command without its tag, as the
// command reader framed it; ok false when it holds a literal (the
// decoded path sends that one).
func (sess *session) rawCommand() (string, bool) {
	cc := sess.reader()
	if cc == nil {
		return "", false
	}
	text := bytes.TrimSuffix(cc.command(), []byte("\r\n"))
	_, rest, ok := bytes.Cut(text, []byte(" "))
	if !ok || bytes.ContainsAny(rest, "\r\n") {
		return "", false
	}
	return string(rest), true
}

// listRaw runs the client's LIST or LSUB (name) upstream as it is and
// holds the answer; one too big to hold goes to this session's client as
// it comes (listRelay.spill), and the answer holds only its tail.
func (sess *session) listRaw(name, cmd string) (*listAnswer, error) {
	ans := &listAnswer{}
	err := sess.withConn(name, "", func(c *upstream.Conn) error {
		rl := &listRelay{name: []byte(name), touch: sess.guard.Touch, spill: func(b []byte) error {
			sess.wrote = true // a retry would repeat what went out
			return sess.writeResponses(b)
		}}
		err := c.Raw(cmd, func(r upstream.RawReader) error { return rl.run(r.Reader, r.Tag) })
		_, proto := upstream.IsProtocol(err)
		ans.raw, ans.tooBig, ans.answered = rl.out, rl.tooBig, err == nil || proto
		ans.streamed = rl.tooBig && rl.spill != nil
		if rl.spillErr != nil {
			return rl.spillErr // the client is gone; the upstream read its answer to the end
		}
		return err
	})
	return ans, err
}

// writeRelayed writes a relayed answer's responses to the client (writeResponses),
// then returns the upstream's status.
func (sess *session) writeRelayed(ans *listAnswer, status error) error {
	if ans == nil || len(ans.raw) == 0 {
		return status
	}
	if err := sess.writeResponses(ans.raw); err != nil {
		return err
	}
	return status
}

// writeResponses writes whole responses to the client, straight to the
// transport as drainFetch does (imapserver has written nothing of this
// command and writes its tagged status after List returns), bounded by
// localWriteTimeout.
func (sess *session) writeResponses(b []byte) error {
	sess.writeMu.Lock()
	defer sess.writeMu.Unlock()
	w := deadlineWriter{c: transportOf(sess.conn.NetConn()), d: localWriteTimeout}
	if _, err := w.Write(b); err != nil {
		sess.conn.NetConn().Close() // a response may be cut: no resynchronising
		return &clientGone{err}
	}
	return nil
}
