package upstream

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"

	"github.com/idlemux/idlemux/internal/imapframe"
)

// Upstream commands by name (idlemux_upstream_commands_total{command},
// issue 11): what the provider sees idlemux do, so that answering reads
// from the shared model and cache can be measured, not assumed.
//
// Commands are counted where they leave: a cmdCounter under the framing
// (respConn) sees every byte imapclient writes and every raw command
// (rawcmd.go), on watcher and pool connections alike. It recognises
// "tag SP name" at each command start (RFC 3501 9: command = tag SP
// command-any/-auth/-nonauth/-select CRLF) and skips literal data
// announced by "{n}", "{n+}" (RFC 7888) or "~{n}" (RFC 3516) at a line's
// end, so a message's bytes are never read as commands. The commands
// written before it takes the connection are counted apart: ID where it
// is written (clientid.go), STARTTLS once the connection it secured is
// framed (dial.go; a refused STARTTLS drops the connection uncounted).
//
// Names: a "UID" prefix makes a command of its own ("UID FETCH",
// "UID SEARCH", ...), since a FETCH by sequence number and one by UID
// are different work for the caller to explain. IDLE's "DONE" line
// (RFC 2177) counts as DONE. A name outside cmdNames counts as "OTHER",
// so the label set stays bounded whatever is written.

// cmdNames are the command names counted by name; index 0 is OTHER.
var cmdNames = []string{
	"OTHER", "DONE",
	"CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN",
	"SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE",
	"LIST", "LSUB", "STATUS", "APPEND", "CHECK", "CLOSE", "EXPUNGE",
	"SEARCH", "FETCH", "STORE", "COPY", "MOVE",
	"UID SEARCH", "UID FETCH", "UID STORE", "UID COPY", "UID MOVE", "UID EXPUNGE",
	"IDLE", "ID", "ENABLE", "NAMESPACE", "UNSELECT", "UNAUTHENTICATE",
	"SORT", "UID SORT", "THREAD", "UID THREAD", "GETQUOTA", "GETQUOTAROOT",
	"COMPRESS", "NOTIFY", "GETMETADATA", "SETMETADATA",
}

// cmdIndex maps a name in cmdNames to its index.
var cmdIndex = func() map[string]int {
	m := make(map[string]int, len(cmdNames))
	for i, n := range cmdNames {
		m[n] = i
	}
	return m
}()

// Indexes of the names counted outside the scanner.
var (
	cmdDONE     = cmdIndex["DONE"]
	cmdIDLE     = cmdIndex["IDLE"]
	cmdSTARTTLS = cmdIndex["STARTTLS"]
	cmdID       = cmdIndex["ID"]
)

// numCmdNames is len(cmdNames), a constant for cmdCounts' array type
// (TestCmdNames checks they agree).
const numCmdNames = 49

// cmdCounts are the manager's counters, one per name in cmdNames.
type cmdCounts [numCmdNames]atomic.Uint64

// add counts one command.
func (c *cmdCounts) add(i int) { c[i].Add(1) }

// snapshot returns the counts by name, the zero ones left out.
func (c *cmdCounts) snapshot() map[string]uint64 {
	out := make(map[string]uint64)
	for i := range c {
		if n := c[i].Load(); n > 0 {
			out[cmdNames[i]] = n
		}
	}
	return out
}

// maxCmdHead bounds the bytes of a command line kept to read its tag and
// name: tags idlemux writes are short ("T123", "X4"), the longest name
// with "UID " is 11 bytes.
const maxCmdHead = 48

// maxLitTail bounds the end of a line kept to find a literal marker:
// "~{", imapframe.MaxLiteralDigits digits, "+}" and CR, and a byte more
// so that a longer run of digits is not taken for a size.
const maxLitTail = imapframe.MaxLiteralDigits + 6

// cmdScanner finds command starts in the bytes written on one upstream
// connection. Writes may split a command anywhere; the scanner keeps what
// it needs across them (bounded: the head and tail buffers).
type cmdScanner struct {
	skip      int64 // literal bytes still to pass over
	midCmd    bool  // the current line continues a command after a literal
	afterIdle bool  // the last command was IDLE: its DONE line has no tag
	head      [maxCmdHead]byte
	nhead     int
	tail      [maxLitTail]byte
	ntail     int
}

// scan feeds p and counts into counts each command whose first line
// ends in p.
func (s *cmdScanner) scan(p []byte, counts *cmdCounts) {
	for len(p) > 0 {
		if s.skip > 0 {
			n := int64(len(p))
			if n > s.skip {
				n = s.skip
			}
			s.skip -= n
			p = p[n:]
			continue
		}
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		if !s.midCmd && s.nhead < maxCmdHead {
			s.nhead += copy(s.head[s.nhead:], seg)
		}
		s.keepTail(seg)
		if i < 0 {
			return
		}
		p = p[i+1:]
		s.endLine(counts)
	}
}

// keepTail keeps the last maxLitTail bytes of the current line.
func (s *cmdScanner) keepTail(seg []byte) {
	if len(seg) >= maxLitTail {
		s.ntail = copy(s.tail[:], seg[len(seg)-maxLitTail:])
		return
	}
	if over := s.ntail + len(seg) - maxLitTail; over > 0 {
		copy(s.tail[:], s.tail[over:s.ntail])
		s.ntail -= over
	}
	s.ntail += copy(s.tail[s.ntail:], seg)
}

// endLine handles a line's LF: counts the command it started, if it did,
// and arms the skip of a literal announced at its end.
func (s *cmdScanner) endLine(counts *cmdCounts) {
	if !s.midCmd {
		if idx, ok := s.commandOf(s.head[:s.nhead]); ok {
			counts.add(idx)
		}
	}
	lit, _, ok := imapframe.LiteralMarker(trimCR(s.tail[:s.ntail]))
	ok = ok && lit.Valid // a size IMAP does not allow: the upstream refuses the line
	s.nhead, s.ntail = 0, 0
	s.midCmd = ok
	s.skip = int64(lit.Size)
}

// commandOf names the command a line starts, if it starts one. A line
// without a tag is a continuation (a SASL response, RFC 3501 6.2.2) or
// IDLE's DONE.
func (s *cmdScanner) commandOf(head []byte) (int, bool) {
	head = trimCR(head)
	wasIdle := s.afterIdle
	s.afterIdle = false
	sp := bytes.IndexByte(head, ' ')
	if sp <= 0 {
		if wasIdle && asciiEqualFold(head, "DONE") {
			return cmdDONE, true
		}
		return 0, false
	}
	rest := head[sp+1:]
	name := token(rest)
	var buf [maxCmdHead]byte
	key := upperInto(buf[:0], name)
	if string(key) == "UID" && len(rest) > len(name) {
		key = append(key, ' ')
		key = upperInto(key, token(rest[len(name)+1:]))
	}
	idx := cmdIndex[string(key)] // 0, OTHER, when unknown
	s.afterIdle = idx == cmdIDLE
	return idx, true
}

// trimCR drops a line's CR.
func trimCR(p []byte) []byte {
	if n := len(p); n > 0 && p[n-1] == '\r' {
		return p[:n-1]
	}
	return p
}

// token returns p up to its first SP or CR.
func token(p []byte) []byte {
	for i, c := range p {
		if c == ' ' || c == '\r' {
			return p[:i]
		}
	}
	return p
}

// upperInto appends p in ASCII upper case to dst, which has room.
func upperInto(dst, p []byte) []byte {
	n := len(dst)
	dst = append(dst, p...)
	for i, c := range dst[n:] {
		if 'a' <= c && c <= 'z' {
			dst[n+i] = c - ('a' - 'A')
		}
	}
	return dst
}

// asciiEqualFold says whether p is s (upper case) in any case.
func asciiEqualFold(p []byte, s string) bool {
	var buf [8]byte
	return len(p) == len(s) && len(p) <= len(buf) && string(upperInto(buf[:0], p)) == s
}

// cmdCounter is an upstream connection whose writes are scanned for
// commands, counted into counts.
type cmdCounter struct {
	net.Conn
	counts *cmdCounts
	mu     sync.Mutex // imapclient and a raw command may write in turn
	sc     cmdScanner
}

func (c *cmdCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.sc.scan(p, c.counts)
	c.mu.Unlock()
	return c.Conn.Write(p)
}
