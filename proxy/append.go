package proxy

import (
	"errors"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/idlemux/idlemux/upstream"
)

// Append streams the client's literal into an upstream APPEND of the same
// size and kind (literal or literal8, RFC 3516 4.4): the message is never
// held whole in memory.
func (sess *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	sess.settle()
	var data *imap.AppendData
	cc := sess.reader()
	binary := cc != nil && cc.appendBinary()
	w := sess.appendTarget(mailbox)
	var rep appendReport
	selected := "" // any connection will do
	if w != nil {
		selected = sess.sel.name // one with the mailbox selected reads the new message
	}
	// The literal is spooled already (litspool.go): the slot waits for
	// no client.
	err := sess.inWriteSlot(mailbox, func() error {
		return sess.withConn("APPEND", selected, func(c *upstream.Conn) (err error) {
			if data, err = sess.appendOn(c, mailbox, r, options, binary); err != nil || w == nil {
				return err
			}
			readAppended(c, canonical(mailbox), data, &rep)
			return nil
		})
	})
	if err != nil {
		sess.noteMissing("APPEND", mailbox, err)
		return nil, err
	}
	sess.confirmAppend(mailbox, w, rep) // the new message reaches every session of mailbox before OK
	if sess.sel != nil && canonical(mailbox) == sess.sel.name {
		// A keyword new to the mailbox (the client's, or one the server
		// adds on save) is announced with the APPEND's answer, as the
		// server tells the session that appended (RFC 3501 7.2.6).
		if err := sess.tellMailboxFlags(); err != nil {
			return nil, err
		}
	}
	if data != nil && (data.UID == 0 || data.UIDValidity == 0) {
		data = nil // no UIDPLUS upstream: no APPENDUID to give
	}
	return data, nil
}

// appendOn runs the upstream APPEND of r to mailbox on c.
func (sess *session) appendOn(c *upstream.Conn, mailbox string, r imap.LiteralReader, options *imap.AppendOptions, binary bool) (*imap.AppendData, error) {
	var cmd *imapclient.AppendCommand
	if binary {
		// A literal8 stays one upstream, where BINARY is offered (only
		// then is BINARY offered downstream).
		cmd, _ = c.AppendBinary(mailbox, r.Size(), options)
	} else {
		cmd = c.Append(mailbox, r.Size(), options)
	}
	if _, err := io.Copy(cmd, clientReader{r, sess.guard}); err != nil {
		// The client stopped mid-literal: the upstream literal cannot be
		// finished either. Dropping the connection makes sure the partial
		// message is never stored.
		c.Client.Close()
		return nil, &upstream.UnavailableError{Err: errors.New("client stopped sending the message")}
	}
	if err := cmd.Close(); err != nil {
		return nil, err
	}
	return cmd.Wait()
}

// clientReader reads the client's literal with the guard paused: the
// client's pace is not the upstream's silence.
type clientReader struct {
	r io.Reader
	g *upstream.Guard
}

func (c clientReader) Read(p []byte) (int, error) {
	c.g.Pause()
	defer c.g.Touch()
	return c.r.Read(p)
}
