package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"sync"
)

// A raw command is one the caller writes and whose answer it reads itself,
// byte for byte, instead of through imapclient: a FETCH relayed to a client
// as the upstream sent it (proxy/fetchrelay.go), which imapclient would
// decode and go-imap's server re-encode differently.
//
// imapclient's reader goroutine is the only reader of the connection. The
// response reader (respreader.go) hands its buffered reader over at the
// start of the next response once a raw command is pending, and waits until
// the command's owner has read through its tagged completion: imapclient
// never sees any of that answer, and reads on from the next response as if
// nothing had happened. The owner writes the command itself: a pool
// connection is held by one session at a time, and imapclient has nothing
// in flight on it between commands.

// handoff is one raw command's claim on the response reader.
type handoff struct {
	ready chan struct{} // closed by the reader goroutine: br is the owner's
	done  chan struct{} // closed by the owner: br goes back to imapclient
}

// errRawBroken poisons a response reader whose raw command stopped in the
// middle of an answer: what follows in its buffer is no response start.
var errRawBroken = errors.New("upstream connection closed after an unfinished raw command")

// setRaw claims the reader for the next response.
func (r *respReader) setRaw(h *handoff) {
	r.mu.Lock()
	r.raw = h
	r.mu.Unlock()
}

// yield hands the buffered reader to a pending raw command, if any, and
// waits for it back. Called by imapclient's reader goroutine at a response
// start, with bytes buffered.
func (r *respReader) yield() bool {
	r.mu.Lock()
	h := r.raw
	r.raw = nil
	r.mu.Unlock()
	if h == nil {
		return false
	}
	close(h.ready)
	<-h.done
	return true
}

// RawReader is what a raw command's owner reads its answer from: the
// upstream's bytes, at the start of the first response after the command
// was written. Tag is the command's tag: the answer ends with the line
// that starts with it.
type RawReader struct {
	*bufio.Reader
	Tag string
}

// Raw writes "<tag> cmd CRLF" on the connection and calls read with the
// upstream's answer, which read must consume through the tagged completion
// (and no further). read's *imap.Error (the upstream's NO or BAD) leaves
// the connection usable; any other error closes it, since its stream may
// stop in the middle of a response. The caller bounds the exchange (a
// Guard closes the connection on silence, which fails read's reads).
func (c *Conn) Raw(cmd string, read func(r RawReader) error) error {
	if c.raw == nil {
		return unavailable("raw commands are not available on this connection")
	}
	rr := c.raw.r
	h := &handoff{ready: make(chan struct{}), done: make(chan struct{})}
	rr.setRaw(h)
	c.rawTags++
	tag := fmt.Sprintf("X%d", c.rawTags) // imapclient's tags are T<n>
	if _, err := c.raw.Conn.Write([]byte(tag + " " + cmd + "\r\n")); err != nil {
		c.raw.Conn.Close()
		return unavailable("writing to upstream: %v", err)
	}
	select {
	case <-h.ready:
	case <-c.Closed():
		return unavailable("upstream connection closed before answering")
	}
	err := read(RawReader{Reader: rr.br, Tag: tag})
	if err != nil {
		if _, proto := IsProtocol(err); !proto {
			rr.err = errRawBroken // seen by the reader goroutine after done
			c.raw.Conn.Close()
		}
	}
	close(h.done)
	return err
}

// rawState is the response reader's part in raw commands.
type rawState struct {
	mu  sync.Mutex
	raw *handoff
}
