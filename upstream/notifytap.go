package upstream

import (
	"bytes"
	"sync/atomic"
)

// tapState lets the notify connection (notifier.go) take the upstream's
// untagged STATUS responses off its stream: imapclient drops a STATUS no
// command of its own asked for, and RFC 5465 events for mailboxes that
// are not selected are just that. A tapped STATUS is dropped for
// imapclient and handed whole (line and literals, at most maxEventLen
// bytes; over is set when it was longer) to the tap, on imapclient's
// reader goroutine: the tap must not block. An untagged OK is handed to
// the tap too, and still passed on: RFC 5465 section 5.8's
// NOTIFICATIONOVERFLOW comes as one.
type tapState struct {
	tap     atomic.Pointer[func(resp []byte, over bool)]
	tapping bool // the current response is a tapped STATUS
	tapBuf  []byte
	tapOver bool
}

// setTap installs the function STATUS responses go to.
func (r *respReader) setTap(f func(resp []byte, over bool)) { r.tap.Store(&f) }

// tapStart begins taking a response of kind and type name when a tap is
// installed and it is a STATUS.
func (r *respReader) tapStart(kind respKind, name []byte) {
	r.tapping = false
	if r.tap.Load() == nil {
		return
	}
	status := kind == kindData && bytes.EqualFold(name, []byte("STATUS"))
	if !status && (kind != kindText || !bytes.EqualFold(name, []byte("OK"))) {
		return
	}
	r.tapping, r.tapOver = true, false
	r.drop = r.drop || status
	r.tapBuf = r.tapBuf[:0]
}

// tapKeep keeps b, part of a tapped response, within maxEventLen.
func (r *respReader) tapKeep(b []byte) {
	if !r.tapping {
		return
	}
	if len(r.tapBuf)+len(b) > maxEventLen {
		r.tapOver = true
		return
	}
	r.tapBuf = append(r.tapBuf, b...)
}

// tapLiteral reads (and keeps) part of a tapped response's literal.
func (r *respReader) tapLiteral() (int, error) {
	want := int(min(r.rem, 4096))
	b, err := r.br.Peek(max(1, min(want, r.br.Buffered())))
	r.tapKeep(b)
	r.br.Discard(len(b))
	if len(b) > 0 {
		err = nil
	}
	return len(b), err
}

// tapEnd hands a tapped response, now whole, to the tap.
func (r *respReader) tapEnd() {
	if !r.tapping {
		return
	}
	r.tapping = false
	if f := r.tap.Load(); f != nil {
		(*f)(r.tapBuf, r.tapOver)
	}
}
