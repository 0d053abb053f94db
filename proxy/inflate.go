package proxy

import (
	"errors"
	"io"
	"net"
	"sync/atomic"

	kflate "github.com/klauspost/compress/flate"
)

// The inflater of a compressed session (COMPRESS=DEFLATE, RFC 4978).
//
// It is klauspost/compress's, for two reasons measured against stdlib's:
//
//   - its partial-block mode hands the client's bytes on at the end of
//     every block; stdlib's only at an empty stored block (a sync flush),
//     which clients ending a command with zlib's Z_PARTIAL_FLUSH (isync's
//     mbsync) never send, so it sat on their commands for good;
//   - its block-end checkpoints let an idle session park it: a decoder
//     costs 36 KiB (stdlib's 40.5 KiB) whatever the client sent, while
//     what must stay is only the window the client may refer to (RFC 1951
//     2: the last 32 KiB it sent; a young session's is a few hundred
//     bytes) and at most one byte whose bits are not all decoded.
//
// Parking happens where the source is about to wait for the client (a
// one-byte read) and nothing was read since a block ended with at most
// seven bits of its last byte left over: no output can come of those
// bits without another byte (every block's header and first code take
// ten or more), so the checkpoint is the decoder's whole state. The next
// byte from the client brings back a decoder resumed from the checkpoint.

// errParked is what the source gives the decoder to make it stop where it
// can be parked.
var errParked = errors.New("inflater parked while the client is silent")

// inflateSrc feeds the inflater from the transport (flate's readers would
// otherwise add a bufio.Reader of their own). An idle session must hold no
// buffer, yet a byte per read(2) would cost a system call per byte: after
// a read that did not fill the buffer (the client's burst ended) the next
// wait is a one-byte read into the struct, and the rest of the burst is
// then read into a buffer from inbuf's pool, given back as soon as it is
// consumed. A read only ever happens when the inflater needs another
// byte, so no read blocks on bytes the client never sends.
type inflateSrc struct {
	c       net.Conn
	onWait  func() // the session is about to wait for the client
	waiting atomic.Bool
	one     [1]byte
	small   bool // the next refill is a one-byte read
	buf     *[]byte
	r, w    int
	err     error
	done    atomic.Bool

	off  int64 // bytes handed to the decoder, the re-fed one aside
	last byte  // the last of them

	cp      kflate.InflateCheckpoint // at the last block end
	cpOff   int64                    // off then
	cpValid bool
	refeed  int // 0 or 1: last goes to the resumed decoder first
	parks   int // times parked (tests)
}

func (s *inflateSrc) closed() bool { return s.done.Load() }

// inflater is a decoder on s, resumed from cp when given.
func (s *inflateSrc) inflater(cp *kflate.InflateCheckpoint) io.ReadCloser {
	opts := []kflate.ReaderOpt{kflate.WithPartialBlock(), kflate.WithEobCallback(s.blockEnd)}
	if cp != nil {
		opts = append(opts, kflate.WithResumeFrom(*cp))
	}
	return kflate.NewReaderOpts(s, opts...)
}

// blockEnd keeps the decoder's checkpoint; its Window is the decoder's
// until the next block end, and copied only when parking.
func (s *inflateSrc) blockEnd(cp kflate.InflateCheckpoint) {
	s.cp, s.cpOff, s.cpValid = cp, s.off, true
}

// parkable reports whether the checkpoint is the decoder's whole state
// (see the top of this file).
func (s *inflateSrc) parkable() bool {
	if !s.cpValid || s.cp.Final || s.off != s.cpOff {
		return false
	}
	k := s.off - s.cp.CompressedOffset
	return k == 0 && s.cp.BitOffset == 0 || k == 1 && s.cp.BitOffset > 0
}

// park keeps what a resumed decoder needs: a right-sized copy of the
// window and the partly decoded byte.
func (s *inflateSrc) park() {
	s.cp.Window = append([]byte(nil), s.cp.Window...)
	s.refeed = int(s.off - s.cp.CompressedOffset)
	s.cpValid = false
	s.parks++
}

// resume waits for the client's next byte, then gives a decoder resumed
// from the parked checkpoint.
func (s *inflateSrc) resume() (io.ReadCloser, error) {
	if err := s.wait(); err != nil {
		return nil, err
	}
	cp := s.cp
	s.cp.Window = nil // the decoder copies it
	return s.inflater(&cp), nil
}

// hold buffers what the command reader read past COMPRESS.
func (s *inflateSrc) hold(p []byte) {
	s.buf = inbufPool.Get().(*[]byte)
	s.r, s.w = 0, copy(*s.buf, p)
}

func (s *inflateSrc) ReadByte() (byte, error) {
	if s.refeed > 0 {
		s.refeed = 0
		return s.last, nil
	}
	if s.r == s.w {
		if err := s.refill(); err != nil {
			return 0, err
		}
	}
	c := (*s.buf)[s.r]
	s.r++
	s.off++
	s.last = c
	return c, nil
}

func (s *inflateSrc) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c, err := s.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = c
	n := 1
	if s.buf != nil {
		n += copy(p[1:], (*s.buf)[s.r:s.w])
		s.r += n - 1
		s.off += int64(n - 1)
		s.last = p[n-1]
	}
	return n, nil
}

// refill reads at least one byte into an empty buffer, or parks the
// decoder (errParked) where it would wait for the client.
func (s *inflateSrc) refill() error {
	s.drop()
	if s.err != nil {
		return s.err
	}
	if s.small {
		if s.parkable() {
			s.park()
			return errParked
		}
		return s.wait()
	}
	s.buf = inbufPool.Get().(*[]byte)
	n, err := s.c.Read(*s.buf)
	s.w, s.small = n, n < len(*s.buf)
	if n == 0 {
		return s.fail(err)
	}
	return nil
}

// wait is the one-byte read of a silent client, holding no buffer.
func (s *inflateSrc) wait() error {
	s.waiting.Store(true) // first: a write in progress then releases
	s.onWait()
	n, err := s.c.Read(s.one[:])
	s.waiting.Store(false)
	if n == 0 {
		return s.fail(err)
	}
	s.buf = inbufPool.Get().(*[]byte)
	(*s.buf)[0] = s.one[0]
	s.r, s.w, s.small = 0, 1, false
	return nil
}

// drop gives the consumed buffer back.
func (s *inflateSrc) drop() {
	if s.buf != nil {
		inbufPool.Put(s.buf)
		s.buf, s.r, s.w = nil, 0, 0
	}
}

func (s *inflateSrc) fail(err error) error {
	s.drop()
	if err == nil {
		err = io.ErrNoProgress
	}
	s.err = err
	s.done.Store(true)
	return err
}
