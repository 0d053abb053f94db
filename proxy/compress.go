package proxy

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"

	kflate "github.com/klauspost/compress/flate"
	"go.uber.org/zap"
)

// COMPRESS=DEFLATE (RFC 4978) for clients. idlemux terminates the
// client's stream, so it needs nothing from the upstream: deflateConn sits
// between the command reader and the transport (TCP or TLS), and the
// reader's line and literal limits apply to the inflated bytes.
//
// Memory is what decides the design (figures in BENCHMARKS.md). A deflate
// writer holds about 800 KB of state (stdlib level 6; klauspost's level 1
// as much), far more than an idle session may cost, so no session keeps
// one while it waits:
//
//   - a write batch that finds no writer held and is small goes out as a
//     stored block (RFC 1951 3.2.4) and an empty one: ten bytes of
//     framing, no state, no CPU; a fresh compressor saves at most four
//     bytes on a short line (a keepalive, an EXISTS) and costs a reset
//     of its tables (23 us for stdlib's level 6);
//   - a larger one takes a writer from a pool, and the session keeps it
//     while it answers a command, so a FETCH listing compresses against
//     what came before; it goes back to the pool as soon as the command
//     reader waits for the client. A writer taken while the client waits
//     (an update during IDLE) goes back at once.
//
// A writer's history must be what the client's window holds: a writer is
// only ever taken fresh (Reset, no history) and nothing else is written
// while it is held, so the stored blocks never come between it and its
// own output. Every batch ends on a byte boundary (a sync flush, RFC 4978
// 4, or a stored block), so the client sees whole responses at once.
//
// The inflater (inflate.go) is parked while the client is silent: only
// what the client may still refer to stays (RFC 1951 2: up to 32 KiB of
// what it sent, less for a young session).

// compressWriterLevel trades CPU for bytes: stdlib level 6 moved 16% of a
// 500-message header listing's bytes (level 1: 92%, since stdlib's fast
// mode keeps no history across flushes).
const compressWriterLevel = 6

// maxStored is the largest batch sent as a stored block while no writer is
// held: below it compression saves less than a writer's reset costs.
const maxStored = 256

// zwriter is a pooled deflate writer and the buffer it writes into, so a
// batch goes out in one write to the transport.
type zwriter struct {
	zw  *flate.Writer
	out bytes.Buffer
}

var zwriters = sync.Pool{New: func() any {
	z := new(zwriter)
	z.zw, _ = flate.NewWriter(&z.out, compressWriterLevel)
	return z
}}

// maxPooledOut keeps a writer whose buffer grew on a huge batch out of
// the pool.
const maxPooledOut = 256 << 10

// deflateConn is the transport of a compressed session.
type deflateConn struct {
	net.Conn // the transport under it
	log      *zap.Logger

	zr  io.ReadCloser // the inflater, read only by the command reader
	src *inflateSrc

	wmu     sync.Mutex
	zw      *zwriter // held while a command is answered; nil otherwise
	pending []byte   // framed bytes the idle fast path could not write
}

func newDeflateConn(c net.Conn, early []byte, log *zap.Logger) *deflateConn {
	d := &deflateConn{Conn: c, log: log}
	d.src = &inflateSrc{c: c, onWait: d.release, small: true}
	if len(early) > 0 {
		d.src.hold(early)
	}
	d.zr = d.src.inflater(nil)
	return d
}

// errCorruptStream ends a session whose client sent bytes that do not
// inflate.
var errCorruptStream = errors.New("corrupt compressed stream from the client")

// Read inflates what the client sent. The command reader asks for more
// only when it needs it, so a deflate bomb grows nothing: it stops at the
// reader's limits. A corrupt stream closes the connection. While the
// client is silent the inflater is parked (inflate.go).
func (d *deflateConn) Read(p []byte) (int, error) {
	for {
		if d.zr == nil {
			zr, err := d.src.resume()
			if err != nil {
				return 0, d.src.err
			}
			d.zr = zr
		}
		n, err := d.zr.Read(p)
		if errors.Is(err, errParked) {
			d.zr = nil
			if n == 0 {
				continue
			}
		}
		if err == nil || n > 0 {
			return n, nil
		}
		var ce kflate.CorruptInputError
		if errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF) && !d.src.closed() {
			d.log.Info("closing a compressed session: the client's stream does not inflate", zap.Error(err))
			d.Conn.Close()
			return 0, errCorruptStream
		}
		if d.src.closed() {
			// The stream ended with the connection; its error is the read's.
			return 0, d.src.err
		}
		return 0, err
	}
}

// Write compresses p as one batch, ending on a byte boundary.
func (d *deflateConn) Write(p []byte) (int, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if err := d.flushPending(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if d.zw == nil && len(p) <= maxStored {
		bp := unsolicitedBufs.Get().(*[]byte)
		b := appendStored((*bp)[:0], p)
		_, err := d.Conn.Write(b)
		*bp = b[:0]
		unsolicitedBufs.Put(bp)
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if d.zw == nil {
		d.zw = zwriters.Get().(*zwriter)
		d.zw.out.Reset()
		d.zw.zw.Reset(&d.zw.out)
	}
	z := d.zw
	z.zw.Write(p) // into a bytes.Buffer: no error
	z.zw.Flush()
	_, err := d.Conn.Write(z.out.Bytes())
	z.out.Reset()
	if d.src.waiting.Load() {
		d.releaseHeld()
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// errFastShort: writeFast's bytes went out in part; the deflateConn holds
// the rest, which the next write sends first.
var errFastShort = errors.New("compressed fast-path write came up short")

// writeFast is the idle fast path's one non-blocking write (idlefast.go)
// of b as stored blocks, under wmu so nothing comes between a writer's
// output and its history: a writer still held is let go first. It
// returns 0 and no error, for the session's goroutine to write b, when
// the client has not taken the last batch yet or b is worth compressing.
func (d *deflateConn) writeFast(raw syscall.RawConn, b []byte) (int, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if len(d.pending) > 0 {
		n, err := rawWrite(raw, d.pending)
		d.pending = d.pending[n:]
		if err != nil || len(d.pending) > 0 {
			return 0, err
		}
		d.pending = nil
	}
	if len(b) > maxStored {
		return 0, nil
	}
	d.releaseHeld()
	bp := unsolicitedBufs.Get().(*[]byte)
	framed := appendStored((*bp)[:0], b)
	defer func() { *bp = framed[:0]; unsolicitedBufs.Put(bp) }()
	n, err := rawWrite(raw, framed)
	if err != nil {
		return 0, err
	}
	if n < len(framed) {
		d.pending = append([]byte(nil), framed[n:]...)
		return len(b), errFastShort
	}
	return len(b), nil
}

// hasPending reports whether writeFast left bytes to send; false for nil.
func (d *deflateConn) hasPending() bool {
	if d == nil {
		return false
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	return len(d.pending) > 0
}

// flushPending writes what the fast path left, first. wmu is held.
func (d *deflateConn) flushPending() error {
	if len(d.pending) == 0 {
		return nil
	}
	_, err := d.Conn.Write(d.pending)
	d.pending = nil
	return err
}

// release gives the writer back to the pool: the command reader is about
// to wait for the client, so the session is between commands or idling.
// It never waits for a write in progress (to a slow client, up to its
// deadline): that write lets the writer go itself, as the source already
// says it waits.
func (d *deflateConn) release() {
	if d.wmu.TryLock() {
		d.releaseHeld()
		d.wmu.Unlock()
	}
}

func (d *deflateConn) releaseHeld() {
	if d.zw == nil {
		return
	}
	if d.zw.out.Cap() <= maxPooledOut {
		zwriters.Put(d.zw)
	}
	d.zw = nil
}

func (d *deflateConn) Close() error {
	err := d.Conn.Close()
	d.wmu.Lock()
	d.releaseHeld()
	d.wmu.Unlock()
	return err
}

// maxStoredBlock is a stored block's largest length (RFC 1951 3.2.4).
const maxStoredBlock = 65535

// appendStored frames p as non-final stored blocks (RFC 1951 3.2.4):
// from a byte boundary, the header bits BFINAL=0 BTYPE=00 pad to one zero
// byte, then LEN and its one's complement NLEN, little-endian, then the
// bytes. An empty stored block follows, as a sync flush ends (RFC 4978
// 4): inflaters (Go's among them) hand on a stored block's bytes only at
// the next block, and an empty one makes that now.
func appendStored(b, p []byte) []byte {
	for len(p) > 0 {
		n := min(len(p), maxStoredBlock)
		b = append(b, 0, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		b = append(b, p[:n]...)
		p = p[n:]
	}
	return append(b, 0, 0, 0, 0xff, 0xff)
}
