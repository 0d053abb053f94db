package proxy

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/fanout"
)

// The fast path for idling sessions.
//
// Waking every idling session's goroutine for each change, and writing
// through imapserver (an encoder, its lock and two deadline changes per
// response), cost as much CPU as the write(2) calls themselves when one
// change reaches 10,000 sessions. Instead, the sessions idling on a mailbox
// over plain TCP join that mailbox's idle set, and one dispatcher per set
// delivers each change: GOMAXPROCS workers encode each session's pending
// updates and write them with one non-blocking write(2), under the
// session's writeMu (as keepalives are written). The session's goroutine
// sleeps until DONE, a keepalive, or a hand-off:
//
//   - a write that would block (a slow client) or that fails hands the
//     rest of the bytes to the session's goroutine, which writes them with
//     a deadline and finishes this IDLE on the ordinary path;
//   - a view that failed (lagging, UIDVALIDITY) hands off too: the
//     ordinary path says BYE.
//
// TLS sessions keep the ordinary path (their records need the tls.Conn).
// Compressed sessions (COMPRESS=DEFLATE) keep the fast path: a worker
// frames a batch as stored deflate blocks, which need no compressor
// state, and writes them under the deflateConn's lock (writeFast); a
// batch too large to send uncompressed is handed to the goroutine, which
// compresses it.

// idleSet is the plain-TCP sessions idling on one mailbox.
type idleSet struct {
	box      *fanout.Mailbox
	mu       sync.Mutex
	sessions map[*session]struct{}
	done     chan struct{} // closed when the set empties: its dispatcher ends
}

// fastIdle is a session's state while on the fast path; guarded by the
// session's writeMu.
type fastIdle struct {
	sel        *selection
	raw        syscall.RawConn
	rest       []byte          // bytes a worker could not write: the goroutine's now
	restEvents int             // updates in rest, for the metrics once written
	handoff    bool            // the ordinary path takes over for this IDLE
	kick       chan struct{}   // capacity 1: "look at handoff"
	stop       <-chan struct{} // IDLE's: closed when it ends
	z          *deflateConn    // the session's under COMPRESS, else nil
}

// rawConnOf returns the socket under a plain-TCP connection (PROXY protocol
// included), or nil for TLS and anything else.
func rawConnOf(c net.Conn) syscall.RawConn {
	if c = plainTransport(c); c == nil {
		return nil
	}
	if pc, ok := c.(*proxyproto.Conn); ok {
		tc, ok := pc.TCPConn()
		if !ok {
			return nil
		}
		c = tc
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// joinIdle adds sess to the idle set of box, starting its dispatcher if
// it is the first.
func (s *Server) joinIdle(sess *session, box *fanout.Mailbox) {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	set := s.idleSets[box]
	if set == nil {
		if s.idleSets == nil {
			s.idleSets = make(map[*fanout.Mailbox]*idleSet)
		}
		set = &idleSet{box: box, sessions: make(map[*session]struct{}), done: make(chan struct{})}
		s.idleSets[box] = set
		go set.dispatch(s)
	}
	set.mu.Lock()
	set.sessions[sess] = struct{}{}
	set.mu.Unlock()
}

// leaveIdle removes sess; the last one out stops the dispatcher.
func (s *Server) leaveIdle(sess *session, box *fanout.Mailbox) {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	set := s.idleSets[box]
	if set == nil {
		return
	}
	set.mu.Lock()
	delete(set.sessions, sess)
	empty := len(set.sessions) == 0
	set.mu.Unlock()
	if empty {
		delete(s.idleSets, box)
		close(set.done)
	}
}

// dispatch delivers every change of the mailbox to the set's sessions
// until the set empties. The channel is taken before each round, so a
// change made during a round brings another.
func (set *idleSet) dispatch(s *Server) {
	workers := max(1, runtime.GOMAXPROCS(0))
	bufs := make([][]byte, workers)
	var list []*session
	for {
		changed := set.box.Changed()
		set.mu.Lock()
		list = list[:0]
		for sess := range set.sessions {
			list = append(list, sess)
		}
		set.mu.Unlock()
		if len(list) < 64 || workers == 1 {
			for _, sess := range list {
				bufs[0] = sess.fastDeliver(bufs[0])
			}
		} else {
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := w; i < len(list); i += workers {
						bufs[w] = list[i].fastDeliver(bufs[w])
					}
				})
			}
			wg.Wait()
		}
		clear(list) // drop the references until the next round
		select {
		case <-changed:
		case <-set.done:
			return
		}
	}
}

// fastDeliver writes the session's pending updates with one non-blocking
// write, or hands them to its goroutine. buf is the worker's scratch.
func (sess *session) fastDeliver(buf []byte) []byte {
	if !sess.writeMu.TryLock() {
		// A keepalive, a BYE or the goroutine itself holds it: wake the
		// goroutine to deliver once it can, so a worker never waits on a
		// slow client.
		select {
		case sess.fastWake <- struct{}{}:
		default:
		}
		return buf
	}
	defer sess.writeMu.Unlock()
	return sess.fastDeliverHeld(buf)
}

// fastDeliverHeld is fastDeliver with writeMu held. A panic (a bug) hands
// the session to the ordinary path, where imapserver contains it to that
// session, instead of ending the process on a worker.
func (sess *session) fastDeliverHeld(buf []byte) []byte {
	f := sess.fast
	if f == nil || f.handoff {
		return buf
	}
	defer func() {
		if r := recover(); r != nil {
			sess.log.Error("fast-path delivery panicked; the session goes on the ordinary path", zap.Any("panic", r), zap.Stack("stack"))
			f.handOff(nil, 0)
		}
	}()
	select {
	case <-f.stop:
		// imapserver may be writing its answer to a line other than DONE
		// (without waiting for Idle): do not queue behind it. (A write
		// already past this point can still wait for that one.)
		return buf
	default:
	}
	v := f.sel.v
	ups, to, err := v.Pending(true)
	if err != nil {
		f.handOff(nil, 0)
		return buf
	}
	if len(ups) == 0 {
		return buf
	}
	buf = appendSessionUpdates(buf[:0], ups, f.sel, nil, sess.vanishedOn())
	n, err := f.write(buf)
	v.Commit(to) // written, or from now on the goroutine's to write
	if errors.Is(err, errFastShort) {
		f.handOff(nil, len(ups)) // the deflateConn holds the rest
		return buf
	}
	if err != nil || n < len(buf) {
		f.handOff(buf[max(n, 0):], len(ups))
		return buf
	}
	sess.s.metrics.fanoutEvents.Add(float64(len(ups)))
	sess.s.metrics.fanoutLatency.Observe(time.Since(f.sel.w.Mailbox().UpdatedAt()).Seconds())
	return buf
}

// write makes the fast path's one non-blocking write of b.
func (f *fastIdle) write(b []byte) (int, error) {
	if f.z != nil {
		return f.z.writeFast(f.raw, b)
	}
	return rawWrite(f.raw, b)
}

// handOff gives the ordinary path the rest of this IDLE, with rest (the
// end of events updates) to write first. The caller holds writeMu.
func (f *fastIdle) handOff(rest []byte, events int) {
	f.rest = append(f.rest, rest...)
	f.restEvents += events
	f.handoff = true
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// rawWriteOnce makes one non-blocking write(2) on the socket: the bytes
// the kernel took, and no error when it would have blocked.
func rawWriteOnce(raw syscall.RawConn, b []byte) (int, error) {
	var n int
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		n, werr = syscall.Write(int(fd), b)
		return true // one attempt: never wait for the socket here
	})
	if err != nil {
		return 0, err
	}
	if errors.Is(werr, syscall.EAGAIN) {
		return max(n, 0), nil
	}
	return max(n, 0), werr
}

// rawWriteHook, when set (tests), replaces rawWriteOnce to make fast-path
// writes come up short.
var rawWriteHook atomic.Pointer[func(syscall.RawConn, []byte) (int, error)]

func rawWrite(raw syscall.RawConn, b []byte) (int, error) {
	if h := rawWriteHook.Load(); h != nil {
		return (*h)(raw, b)
	}
	return rawWriteOnce(raw, b)
}

// idleFast is Idle on the fast path: the session sleeps while the
// dispatcher delivers, and returns to the ordinary loop on a hand-off. It
// returns done when IDLE ended (err is then its result).
func (sess *session) idleFast(sel *selection, raw syscall.RawConn, stop <-chan struct{}, keepalive <-chan time.Time, onKeepalive func() error) (done bool, err error) {
	f := &fastIdle{sel: sel, raw: raw, kick: make(chan struct{}, 1), stop: stop, z: deflateOf(sess.conn.NetConn())}
	box := sel.w.Mailbox()
	sess.writeMu.Lock()
	sess.fast = f
	sess.writeMu.Unlock()
	sess.s.joinIdle(sess, box)
	// leave quits the fast path; what a worker could not write goes out
	// first, under the same hold of writeMu, so nothing (a BYE, the ordinary
	// path) can come between the two halves of a cut line. A failure closes
	// the connection: a line cut in half cannot be followed by anything.
	var left bool
	leave := func() error {
		if left {
			return nil
		}
		left = true
		sess.s.leaveIdle(sess, box)
		sess.writeMu.Lock() // waits out a worker's write
		defer sess.writeMu.Unlock()
		sess.fast = nil
		return sess.flushRest(f, unsolicitedWriteTimeout)
	}
	defer leave() // also when something below panics
	var buf []byte
	catchUp := func() {
		sess.writeMu.Lock()
		buf = sess.fastDeliverHeld(buf)
		sess.writeMu.Unlock()
	}
	catchUp() // what changed before joining
	for {
		select {
		case <-sess.fastWake:
			catchUp() // a worker found writeMu held
		case <-f.kick:
			if err := leave(); err != nil {
				return true, err
			}
			return false, nil // the ordinary loop takes over
		case <-keepalive:
			if err := onKeepalive(); err != nil {
				return true, err
			}
			catchUp() // a worker may have skipped it meanwhile
		case <-stop:
			// A hand-off that raced DONE: its bytes still go out first.
			return true, leave()
		}
	}
}

// flushRest writes what a worker could not write of f's updates, within d.
// A failure closes the connection: a line cut in half cannot be followed
// by anything. The caller holds writeMu.
func (sess *session) flushRest(f *fastIdle, d time.Duration) error {
	rest, events := f.rest, f.restEvents
	f.rest, f.restEvents = nil, 0
	if len(rest) == 0 && !f.z.hasPending() {
		return nil
	}
	// Under COMPRESS, the write goes through the deflateConn, which sends
	// what writeFast left first (even when rest is empty).
	if err := sess.writeRaw(rest, d); err != nil {
		sess.conn.NetConn().Close()
		return err
	}
	sess.s.metrics.fanoutEvents.Add(float64(events))
	return nil
}

// writeRaw writes b straight to the connection within d; the caller holds
// writeMu.
//
// It writes under the command reader, which follows only imapserver's
// own output: the rest of a line the fast path cut may start mid-line.
func (sess *session) writeRaw(b []byte, d time.Duration) error {
	return writeAround(sess.conn.NetConn(), b, d)
}

// writeAround writes b to the transport under imapserver's connection c,
// past the command reader, within d.
func writeAround(conn net.Conn, b []byte, d time.Duration) error {
	c := transportOf(conn)
	c.SetWriteDeadline(time.Now().Add(d))
	_, err := c.Write(b)
	c.SetWriteDeadline(time.Time{})
	return err
}
