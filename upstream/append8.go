package upstream

import (
	"bytes"
	"strconv"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/idlemux/idlemux/upstream/quirks"
)

// AppendBinary starts an APPEND whose message goes upstream as a literal8
// (RFC 3516 4.4: "~{n}"), so the upstream stores its bytes as they are
// (NUL, bare LF) where a plain literal lets it normalize them. imapclient
// writes only plain literals: the connection's framing (respConn) puts
// the "~" before the APPEND's literal marker as it goes out. binary
// reports whether it did; without BINARY upstream the message goes as a
// plain literal (a literal8 would only get BAD).
func (c *Conn) AppendBinary(mailbox string, size int64, options *imap.AppendOptions) (cmd *imapclient.AppendCommand, binary bool) {
	rc := c.raw
	if rc != nil && quirks.Has(c.Caps(), quirks.Binary) {
		rc.w.arm(size)
		binary = true
	}
	return c.Append(mailbox, size, options), binary
}

// maxAppendLine bounds the APPEND line held while looking for its literal
// marker: imapclient quotes names and flags, so the line is short; past
// this it goes out unchanged.
const maxAppendLine = 64 << 10

// literal8Writer rewrites the literal marker of the next APPEND line
// written, once armed: " {n}" or " {n+}" at the end of the line becomes
// " ~{n}" or " ~{n+}". The line may come in several writes: its start is
// held until its CRLF.
type literal8Writer struct {
	mu     sync.Mutex
	armed  bool
	marker []byte // " {n" that ends the line before "}" or "+}"
	held   []byte
}

func (w *literal8Writer) arm(size int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed, w.held = true, nil
	w.marker = []byte(" {" + strconv.FormatInt(size, 10))
}

// rewrite returns what to write for p: nil while the line's start is held.
func (w *literal8Writer) rewrite(p []byte) []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed {
		return p
	}
	buf := append(w.held, p...)
	i := bytes.Index(buf, []byte("\r\n"))
	if i < 0 && len(buf) < maxAppendLine {
		w.held = buf
		return nil
	}
	w.armed, w.held = false, nil
	if i < 0 {
		return buf
	}
	line := buf[:i]
	if sp := bytes.IndexByte(line, ' '); sp < 0 || !bytes.HasPrefix(line[sp:], []byte(" APPEND ")) {
		return buf
	}
	var at int
	switch {
	case bytes.HasSuffix(line, append(w.marker, '}')):
		at = len(line) - len(w.marker) - 1
	case bytes.HasSuffix(line, append(w.marker, '+', '}')):
		at = len(line) - len(w.marker) - 2
	default:
		return buf
	}
	out := make([]byte, 0, len(buf)+1)
	out = append(out, buf[:at+1]...)
	out = append(out, '~')
	return append(out, buf[at+1:]...)
}
