package proxy

import (
	"bufio"
	"fmt"
	"math/rand"
	"net"
	"strings"
	"time"

	"github.com/idlemux/idlemux/internal/imapcheck"
)

// ckWorker is one raw-wire IMAP session of the randomized consistency
// test: it sends commands, reads every response with imapcheck's strict
// parser and feeds them to its imapcheck.Session.
type ckWorker struct {
	name string
	c    net.Conn
	r    *bufio.Reader
	s    *imapcheck.Session
	rng  *rand.Rand
	tags int
	kws  []string // the keywords only this worker stores
	err  error    // the first wire error; the worker stops on it
}

const ckMaxResponse = 1 << 20

func dialCk(addr, name string, s *imapcheck.Session, seed int64, kws []string) (*ckWorker, error) {
	c, err := net.DialTimeout("tcp", addr, waitLong)
	if err != nil {
		return nil, err
	}
	w := &ckWorker{name: name, c: c, r: bufio.NewReader(c), s: s, rng: rand.New(rand.NewSource(seed)), kws: kws}
	c.SetReadDeadline(time.Now().Add(waitLong))
	if _, _, err := imapcheck.ReadResponse(w.r, ckMaxResponse); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: greeting: %w", name, err)
	}
	return w, nil
}

// read reads one response; a malformed one is counted and skipped.
func (w *ckWorker) read() (*imapcheck.Response, error) {
	for {
		w.c.SetReadDeadline(time.Now().Add(waitLong))
		r, raw, err := imapcheck.ReadResponse(w.r, ckMaxResponse)
		if err == nil {
			return r, nil
		}
		if r == nil && len(raw) > 0 && strings.HasSuffix(string(raw), "\n") {
			w.s.Malformed(raw, err)
			continue
		}
		return nil, err
	}
}

// cmd runs one command: line (without tag and CRLF), and for APPEND the
// message, sent as a synchronizing literal after the server's "+".
func (w *ckWorker) cmd(c imapcheck.Command, line string, literal []byte) (*imapcheck.Response, error) {
	if w.err != nil {
		return nil, w.err
	}
	w.tags++
	tag := fmt.Sprintf("%s.%d", w.name, w.tags)
	c.Line = line
	w.s.Begin(tag, c)
	w.c.SetWriteDeadline(time.Now().Add(waitLong))
	if _, err := fmt.Fprintf(w.c, "%s %s\r\n", tag, line); err != nil {
		return nil, w.fail(err)
	}
	for {
		r, err := w.read()
		if err != nil {
			return nil, w.fail(fmt.Errorf("%s %s: %w", tag, line, err))
		}
		switch {
		case r.Tag == "+" && literal != nil:
			if _, err := w.c.Write(append(literal, "\r\n"...)); err != nil {
				return nil, w.fail(err)
			}
			literal = nil
		case r.Tag == "+" && c.Name == "IDLE":
			w.idleFor(time.Duration(w.rng.Intn(300)) * time.Millisecond)
			if _, err := w.c.Write([]byte("DONE\r\n")); err != nil {
				return nil, w.fail(err)
			}
		case r.Tag == tag:
			w.s.End(r)
			return r, nil
		case r.Tag == "*":
			w.s.Receive(r)
		default:
			return nil, w.fail(fmt.Errorf("%s %s: unexpected response %q", tag, line, r.Raw))
		}
	}
}

// idleFor reads what the server sends during IDLE for d.
func (w *ckWorker) idleFor(d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		w.c.SetReadDeadline(end)
		r, raw, err := imapcheck.ReadResponse(w.r, ckMaxResponse)
		switch {
		case err == nil:
			w.s.Receive(r)
		case r == nil && len(raw) > 0 && strings.HasSuffix(string(raw), "\n"):
			w.s.Malformed(raw, err)
		case len(raw) > 0:
			w.err = fmt.Errorf("IDLE: read cut mid-response: %w", err)
			return
		default:
			return // the deadline: nothing more to read
		}
	}
}

func (w *ckWorker) fail(err error) error {
	if w.err == nil {
		w.err = fmt.Errorf("%s: %w", w.name, err)
	}
	return w.err
}

// fill fetches the UIDs of the numbers the view does not know yet, so the
// checker can follow every message by UID.
func (w *ckWorker) fill() {
	uids := w.s.UIDs()
	lo := 0
	for i, u := range uids {
		if u == 0 && lo == 0 {
			lo = i + 1
		}
	}
	if lo != 0 {
		w.cmd(imapcheck.Command{Name: "FETCH"}, fmt.Sprintf("FETCH %d:%d (UID)", lo, len(uids)), nil)
	}
}
