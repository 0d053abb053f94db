package proxy

import (
	"bytes"
	"strings"
)

// compress answers COMPRESS (RFC 4978 3) in the reader, in Dovecot
// 2.3.19's words (imap_zlib), checked in order as Dovecot does:
//
//   - before login, an unknown command to Dovecot's login process:
//     BAD "Error in IMAP command received by server.";
//   - with compress off in the config, an unknown command, as on a
//     Dovecot without imap_zlib;
//   - anything but one atom: BAD "Invalid arguments";
//   - compression already on: NO [COMPRESSIONACTIVE], whatever the
//     mechanism (RFC 4978 3);
//   - an atom other than DEFLATE (any case): NO "Unknown compression
//     mechanism";
//   - DEFLATE: OK "Begin compression", and from the byte after that line
//     both directions are raw DEFLATE (RFC 1951, no zlib header).
func (cc *clientConn) compress(f *framed) (*refusal, error) {
	if !cc.authenticated.Load() {
		return &refusal{line: f.tag + " BAD Error in IMAP command received by server."}, nil
	}
	if !cc.l.s.dyn().cfg.Compress {
		return &refusal{line: f.tag + " BAD Error in IMAP command COMPRESS: Unknown command"}, nil
	}
	mech, ok := compressArg(f)
	if !ok {
		return &refusal{line: f.tag + " BAD Error in IMAP command COMPRESS: Invalid arguments"}, nil
	}
	cc.mu.Lock()
	active, log := cc.deflate != nil, cc.sessLog
	cc.mu.Unlock()
	if active {
		return &refusal{line: f.tag + " NO [COMPRESSIONACTIVE] COMPRESSION=DEFLATE already enabled"}, nil
	}
	if !strings.EqualFold(mech, "DEFLATE") {
		return &refusal{line: f.tag + " NO Unknown compression mechanism"}, nil
	}
	if err := cc.writeLocal(f.tag + " OK Begin compression\r\n"); err != nil {
		return nil, err
	}
	if log == nil {
		log = cc.l.log
	}
	// What the client sent past the command is already compressed.
	d := newDeflateConn(cc.transport(), cc.in.drain(), log)
	cc.mu.Lock()
	cc.conn, cc.deflate = d, d
	cc.mu.Unlock()
	cc.in.src = d
	return handledLocally, nil
}

// compressArg returns COMPRESS's one argument if it is an atom (RFC 3501
// 9: Dovecot takes no quoted string or literal for a mechanism).
func compressArg(f *framed) (string, bool) {
	if f.spool != nil || len(f.tail) > 0 || len(f.headCuts) > 0 {
		return "", false
	}
	args := bytes.TrimSuffix(f.args, []byte("\r\n"))
	if len(args) < 2 || args[0] != ' ' {
		return "", false
	}
	for _, c := range args[1:] {
		if c > 0x7f || !isAtomChar(c) {
			return "", false
		}
	}
	return string(args[1:]), true
}
