package proxy

import (
	"io"
	"sync"
)

// inbufSize is the read buffer of one client's command reader. It is taken
// from a pool only while bytes are waiting: an idle client, whose reader
// blocks in its first Read with the caller's own buffer, holds none.
const inbufSize = 4096

var inbufPool = sync.Pool{New: func() any { b := make([]byte, inbufSize); return &b }}

// inbuf buffers what the client sent and the command reader has not framed
// yet.
type inbuf struct {
	src  io.Reader
	buf  *[]byte // nil while empty
	r, w int
}

func (b *inbuf) buffered() int { return b.w - b.r }

// wait blocks until the client sends something, reading it into scratch
// (the caller's buffer) so no buffer of our own is held while it waits.
func (b *inbuf) wait(scratch []byte) error {
	if b.buffered() > 0 {
		return nil
	}
	n, err := b.src.Read(scratch)
	if n > 0 {
		b.hold(scratch[:n])
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// hold buffers p, read into the caller's buffer while ours was empty.
func (b *inbuf) hold(p []byte) {
	b.take()
	b.w = copy(*b.buf, p)
}

func (b *inbuf) take() {
	if b.buf == nil {
		b.buf = inbufPool.Get().(*[]byte)
		b.r, b.w = 0, 0
	}
}

// release gives the buffer back once everything in it was consumed.
func (b *inbuf) release() {
	if b.buf != nil && b.buffered() == 0 {
		inbufPool.Put(b.buf)
		b.buf, b.r, b.w = nil, 0, 0
	}
}

// fill reads more from the client; it returns an error only when nothing
// could be read.
func (b *inbuf) fill() error {
	b.take()
	if b.r > 0 {
		b.w = copy(*b.buf, (*b.buf)[b.r:b.w])
		b.r = 0
	}
	n, err := b.src.Read((*b.buf)[b.w:])
	b.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// peek returns the buffered bytes, filling when empty.
func (b *inbuf) peek() ([]byte, error) {
	if b.buffered() == 0 {
		if err := b.fill(); err != nil {
			return nil, err
		}
	}
	return (*b.buf)[b.r:b.w], nil
}

func (b *inbuf) advance(n int) { b.r += n }

// drain hands out what is buffered (for the TLS handshake after STARTTLS)
// and empties the buffer.
func (b *inbuf) drain() []byte {
	if b.buffered() == 0 {
		b.release()
		return nil
	}
	out := append([]byte(nil), (*b.buf)[b.r:b.w]...)
	b.r = b.w
	b.release()
	return out
}

// discard drops n bytes of the client's input (a refused literal).
func (b *inbuf) discard(n uint64) error { return b.copyN(io.Discard, n) }

// copyN copies n bytes of the client's input to w.
func (b *inbuf) copyN(w io.Writer, n uint64) error {
	for n > 0 {
		p, err := b.peek()
		if err != nil {
			return err
		}
		k := uint64(len(p))
		if k > n {
			k = n
		}
		if _, err := w.Write(p[:k]); err != nil {
			return err
		}
		b.advance(int(k))
		n -= k
	}
	return nil
}
