package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// clientSet is the clients of one shard, wherever that shard runs: the
// same code connects and measures in-process and in a worker.
type clientSet struct {
	spec    shardSpec
	tls     *tls.Config
	clients []*client // clients[k] is client spec.First+k; nil if it failed

	connected, done atomic.Int64 // progress
}

type client struct {
	c      *imapclient.Client
	mu     sync.Mutex
	exists []existsAt
}

type existsAt struct {
	n uint32
	t time.Time // time.Now(): wall clock and monotonic
}

func newClientSet(spec shardSpec) (*clientSet, error) {
	cfg, err := clientTLS(spec)
	if err != nil {
		return nil, err
	}
	return &clientSet{spec: spec, tls: cfg, clients: make([]*client, spec.Count)}, nil
}

func (cs *clientSet) counts() (int, int) {
	return int(cs.connected.Load()), int(cs.done.Load())
}

// source returns the local address for client i: 20,000 clients per
// loopback address from 127.0.0.2 up, so large runs do not run out of
// ephemeral ports on one address.
// An IPv6 proxy (::1) has one loopback address: no source is chosen.
func source(proxy string, i int) *net.TCPAddr {
	if host, _, err := net.SplitHostPort(proxy); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			return nil
		}
	}
	n := 2 + i/20000
	return &net.TCPAddr{IP: net.IPv4(127, 0, byte(n/256), byte(n%256))}
}

// connect logs every client in, SELECTs and starts IDLE, at most
// spec.Connecting at a time, or with Connecting 0 all released at once
// from a gate, so their dials land together.
func (cs *clientSet) connect(ctx context.Context) *connectReport {
	times := make([]time.Duration, cs.spec.Count)
	var firstErr error
	var errOnce sync.Once
	var sem chan struct{}
	if cs.spec.Connecting > 0 {
		sem = make(chan struct{}, cs.spec.Connecting)
	}
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for k := 0; k < cs.spec.Count && ctx.Err() == nil; k++ {
		if sem != nil {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				continue // the loop condition ends it
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sem != nil {
				defer func() { <-sem }()
			} else {
				<-gate
			}
			i := cs.spec.First + k
			t0 := time.Now()
			cl, err := cs.dial(ctx, i)
			if err != nil {
				errOnce.Do(func() { firstErr = fmt.Errorf("client %d: %w", i, err) })
				return
			}
			times[k] = time.Since(t0)
			cs.clients[k] = cl
			cs.connected.Add(1)
		}()
	}
	close(gate)
	wg.Wait()
	r := &connectReport{}
	for k, cl := range cs.clients {
		if cl != nil {
			r.Times = append(r.Times, times[k])
		}
	}
	r.Connected = len(r.Times)
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	return r
}

// dial connects client i. Until IDLE has started, ctx ending closes the
// connection, so a stopped run does not wait out imapclient's timeouts.
func (cs *clientSet) dial(ctx context.Context, i int) (*client, error) {
	d := &net.Dialer{Timeout: 30 * time.Second}
	if src := source(cs.spec.Proxy, i); src != nil {
		d.LocalAddr = src
	}
	conn, err := d.DialContext(ctx, "tcp", cs.spec.Proxy)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	cl := &client{}
	opts := &imapclient.Options{
		TLSConfig: cs.tls,
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(m *imapclient.UnilateralDataMailbox) {
				if m.NumMessages != nil {
					now := time.Now()
					cl.mu.Lock()
					cl.exists = append(cl.exists, existsAt{*m.NumMessages, now})
					cl.mu.Unlock()
				}
			},
		},
	}
	switch cs.spec.TLS {
	case TLSImplicit:
		tc := tls.Client(conn, cs.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		cl.c = imapclient.New(tc, opts)
	case TLSStartTLS:
		if cl.c, err = imapclient.NewStartTLS(conn, opts); err != nil {
			return nil, fmt.Errorf("STARTTLS: %w", err)
		}
	default:
		cl.c = imapclient.New(conn, opts)
	}
	user := cs.spec.User
	if cs.spec.UserTemplate != "" {
		user = strings.ReplaceAll(cs.spec.UserTemplate, "%d", strconv.Itoa(i))
	}
	if err := cl.c.Login(user, cs.spec.Password).Wait(); err != nil {
		cl.c.Close()
		return nil, err
	}
	if _, err := cl.c.Select(cs.spec.Mailbox, nil).Wait(); err != nil {
		cl.c.Close()
		return nil, err
	}
	if _, err := cl.c.Idle(); err != nil {
		cl.c.Close()
		return nil, err
	}
	return cl, nil
}

func (cl *client) seen() uint32 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if len(cl.exists) == 0 {
		return 0
	}
	return cl.exists[len(cl.exists)-1].n
}

// wait returns once every connected client saw EXISTS target, at until,
// or when ctx ends, counting the clients done for progress.
func (cs *clientSet) wait(ctx context.Context, target uint32, until time.Time) {
	for {
		done := 0
		for _, cl := range cs.clients {
			if cl != nil && cl.seen() >= target {
				done++
			}
		}
		cs.done.Store(int64(done))
		if done == int(cs.connected.Load()) || !time.Now().Before(until) || ctx.Err() != nil {
			return
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// measure pairs each appended message with the first EXISTS that covers
// it, per client. When appended carry no monotonic reading (they came
// from another process) the differences are wall-clock ones.
func (cs *clientSet) measure(base uint32, appended []time.Time) *measureReport {
	r := &measureReport{}
	for _, cl := range cs.clients {
		if cl == nil {
			continue
		}
		cl.mu.Lock()
		seen := map[uint32]bool{}
		for _, e := range cl.exists {
			if seen[e.n] {
				r.Dups++
			}
			seen[e.n] = true
		}
		for k, t := range appended {
			want := base + uint32(k) + 1
			i := sort.Search(len(cl.exists), func(i int) bool { return cl.exists[i].n >= want })
			if i == len(cl.exists) {
				r.Missed++
				continue
			}
			r.Latencies = append(r.Latencies, cl.exists[i].t.Sub(t))
			r.Deliveries++
		}
		cl.mu.Unlock()
	}
	return r
}

func (cs *clientSet) close() {
	for _, cl := range cs.clients {
		if cl != nil {
			cl.c.Close()
		}
	}
}
