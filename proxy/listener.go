package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2/imapserver"
	proxyproto "github.com/pires/go-proxyproto"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
)

// listener is one configured listener. It runs its own accept loop and
// hands connections, behind the command reader, to its imapserver. One
// imapserver serves every connection: the capability lists clients see
// are the reader's (caps.go), not imapserver's, so nothing about the
// server depends on what the upstream turns out to support.
type listener struct {
	s   *Server
	cfg config.Listener
	ln  net.Listener
	log *zap.Logger
	// tlsCfg is shared by every connection of the listener: one config
	// means one set of session-ticket keys (clients may resume across
	// reconnects) and no per-connection copy; its GetCertificate follows
	// certificate reloads.
	tlsCfg *tls.Config
	// handshakes ends the implicit-TLS handshakes still running when the
	// listener stops accepting.
	handshakes context.Context
	stop       context.CancelFunc
	early      sync.Map // *tls.Conn -> time.Time accepted: counted before the session

	srv    *imapserver.Server
	cl     *chanListener
	served chan struct{} // closed when srv.Serve returned
}

func newListener(s *Server, cfg config.Listener, ln net.Listener) *listener {
	if cfg.ProxyProtocol {
		ln = proxyListener(ln, cfg.ProxyTrusted)
	}
	l := &listener{s: s, cfg: cfg, ln: ln, log: s.log.With(zap.String("listener", ln.Addr().String()))}
	if cfg.TLS != config.TLSNone {
		l.tlsCfg = s.tls.Config()
	}
	l.handshakes, l.stop = context.WithCancel(context.Background())
	// TLS and the refusal of plaintext logins are the command reader's
	// (clientConn): imapserver sees only the reader, never a *tls.Conn.
	l.srv = imapserver.New(&imapserver.Options{
		NewSession:   l.newSession,
		Caps:         serverCaps(),
		Logger:       printfLogger{l.log.Sugar()},
		InsecureAuth: true,
	})
	l.cl, l.served = newChanListener(ln.Addr()), make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(l.served)
		l.srv.Serve(l.cl)
	}()
	return l
}

func (l *listener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed", zap.Error(err), zap.Duration("retry_in", delay))
			time.Sleep(delay)
			continue
		}
		delay = 0
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetKeepAlive(true)
			tc.SetKeepAlivePeriod(tcpKeepAlive)
		}
		if l.cfg.ProxyProtocol {
			// The header may take a while; read it off the accept loop.
			l.s.wg.Add(1)
			go func() {
				defer l.s.wg.Done()
				if pc, ok := c.(*proxyproto.Conn); ok {
					if tc, ok := pc.TCPConn(); ok {
						tc.SetKeepAlive(true)
						tc.SetKeepAlivePeriod(tcpKeepAlive)
					}
				}
				if l.checkProxyHeader(c) {
					l.start(c)
				}
			}()
			continue
		}
		l.start(c)
	}
}

// start hands a connection to imapserver, behind TLS on implicit listeners.
func (l *listener) start(c net.Conn) {
	if l.cfg.TLS != config.TLSImplicit {
		l.dispatch(c)
		return
	}
	l.s.wg.Add(1)
	go func() {
		defer l.s.wg.Done()
		l.startTLS(c)
	}()
}

// startTLS counts an implicit-TLS connection against its address's limit
// before the (costly) handshake, so one address cannot hold handshakes
// without bound, and hands the count and the accept time on to the
// session (see takeEarly): login_timeout runs from the accept.
func (l *listener) startTLS(c net.Conn) {
	accepted := time.Now()
	s := l.s
	ip := addrOf(c.RemoteAddr())
	if !acquire(s.lim, s.lim.perIP, ip, s.dyn().cfg.Limits.MaxConnectionsPerIP) {
		l.log.Warn("connection refused before TLS: too many from this address", zap.String("remote", c.RemoteAddr().String()))
		c.Close()
		return
	}
	tc, ok := l.handshake(c)
	if !ok {
		release(s.lim, s.lim.perIP, ip)
		return
	}
	l.early.Store(tc, accepted)
	if !l.dispatch(tc) {
		if _, ok := l.early.LoadAndDelete(tc); ok {
			release(s.lim, s.lim.perIP, ip)
		}
	}
}

// takeEarly returns when c was accepted, if startTLS already counted it
// against its address's limit.
func (l *listener) takeEarly(c net.Conn) (time.Time, bool) {
	v, ok := l.early.LoadAndDelete(c)
	if !ok {
		return time.Time{}, false
	}
	return v.(time.Time), true
}

// maxHandshake bounds an implicit-TLS handshake when login_timeout is off.
const maxHandshake = time.Minute

// handshake completes the TLS handshake of an implicit-TLS connection on a
// goroutine of its own, bounded by login_timeout, before imapserver sees
// the connection. Done lazily on the session's goroutine, the handshake's
// deep crypto stack would stay with that goroutine for the whole, mostly
// idle, session: about 20 KiB more per idle TLS client. A peer that never
// completes the handshake is dropped without a session.
func (l *listener) handshake(c net.Conn) (*tls.Conn, bool) {
	limit := maxHandshake
	if d := l.s.dyn().cfg.Limits.LoginTimeout; d > 0 {
		limit = min(d, maxHandshake)
	}
	ctx, cancel := context.WithTimeout(l.handshakes, limit)
	defer cancel()
	tc := tls.Server(c, l.tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		if ce := l.log.Check(zap.DebugLevel, "TLS handshake failed"); ce != nil {
			ce.Write(zap.String("remote", c.RemoteAddr().String()), zap.Error(err))
		}
		c.Close()
		return nil, false
	}
	return tc, true
}

// dispatch hands c to imapserver; false when the listener is shutting
// down (c is then closed).
func (l *listener) dispatch(c net.Conn) bool {
	_, isTLS := c.(*tls.Conn)
	if !l.cl.push(newClientConn(l, c, isTLS)) {
		c.Close() // shutting down
		return false
	}
	return true
}

func (l *listener) stopAccepting() {
	l.ln.Close()
	l.stop()
	l.cl.Close()
}

// byeAll tells every session of this listener that the server is going,
// concurrently (a BYE waits for imapserver's write lock, which a slow
// client's FETCH may hold, but at most byeWriteTimeout before its
// connection is closed), until ctx ends; close() then drops whoever is
// left.
//
// The BYEs are spread over up to half the time ctx leaves (at most a
// millisecond apart): a large fleet told to go at the same instant would
// reconnect, to the next instance, in one burst.
func (l *listener) byeAll(ctx context.Context, text string) {
	var wg sync.WaitGroup
	sessions := l.s.sessionsOf(l)
	var gap time.Duration
	if dl, ok := ctx.Deadline(); ok && len(sessions) > 0 {
		gap = min(time.Until(dl)/2/time.Duration(len(sessions)), time.Millisecond)
	}
	for i, sess := range sessions {
		if i > 0 && gap > 0 {
			time.Sleep(gap)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess.bye(text)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		l.close() // unblocks the stuck writes; their goroutines end by themselves
	}
}

// close closes every connection of the listener.
func (l *listener) close() {
	l.ln.Close()
	l.stop()
	// imapserver's Close must not race its own Serve starting up (its
	// WaitGroup would be misused): stop Serve first, then close the
	// connections.
	l.cl.Close()
	<-l.served
	l.srv.Close()
}

// chanListener is a net.Listener fed by the accept loop.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (cl *chanListener) push(c net.Conn) bool {
	select {
	case cl.ch <- c:
		return true
	case <-cl.done:
		return false
	}
}

func (cl *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-cl.ch:
		return c, nil
	case <-cl.done:
		return nil, net.ErrClosed
	}
}

func (cl *chanListener) Close() error {
	cl.once.Do(func() { close(cl.done) })
	return nil
}

func (cl *chanListener) Addr() net.Addr { return cl.addr }

// printfLogger routes imapserver's messages (read errors, panics it
// recovered) into zap.
type printfLogger struct{ l *zap.SugaredLogger }

func (p printfLogger) Printf(format string, args ...any) { p.l.Infof(format, args...) }
