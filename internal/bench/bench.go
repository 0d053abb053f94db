// Package bench is idlemux's load harness (`idlemux bench`): N clients log
// in through a running idlemux and IDLE on a mailbox, M messages are
// appended directly on the upstream, and for every client the time from
// each APPEND's completion to that client's "* N EXISTS" is measured, with
// missed and duplicated notifications counted. It only ever targets
// loopback addresses and stops by itself.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Options configure one run.
type Options struct {
	Proxy        string // idlemux address (loopback)
	User         string // or UserTemplate with %d (client index)
	UserTemplate string
	Password     string
	Mailbox      string
	Clients      int
	Connecting   int // clients connecting at once

	Upstream         string // upstream address (loopback), plaintext
	UpstreamUser     string
	UpstreamPassword string
	Messages         int
	Rate             float64       // messages per second
	Wait             time.Duration // how long to wait for the last EXISTS

	MetricsURL string // idlemux /metrics, optional
	PID        int    // idlemux's pid, for RSS, optional
	Progress   io.Writer
}

// Result is what a run measured.
type Result struct {
	Clients, Connected       int
	ConnectTotal             time.Duration
	ConnectP50, ConnectMax   time.Duration
	LatencyP50, LatencyP90   time.Duration
	LatencyP99, LatencyMax   time.Duration
	Deliveries, Missed, Dups int
	RSSKiB                   int     `json:",omitempty"`
	RSSPerClientKiB          float64 `json:",omitempty"`
	UpstreamConnections      float64 `json:",omitempty"`
	FanoutLatencyMeanSeconds float64 `json:",omitempty"`
	FanoutLatencyP99AtMost   float64 `json:",omitempty"` // upper bound of the histogram bucket holding p99
	Messages                 int
	Duration                 time.Duration
	FirstError               string `json:",omitempty"`
}

type client struct {
	c      *imapclient.Client
	idle   *imapclient.IdleCommand
	mu     sync.Mutex
	exists []existsAt
}

type existsAt struct {
	n uint32
	t time.Time
}

// CheckLoopback refuses any address that is not on this machine's loopback.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address: bench only targets 127.0.0.0/8 and ::1", addr)
	}
	return nil
}

// RaiseFileLimit lifts the soft open-files limit to the hard one.
func RaiseFileLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	r.Cur = r.Max
	return r.Cur, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
}

// source returns the local address for client i: 20,000 clients per
// loopback address from 127.0.0.2 up, so large runs do not run out of
// ephemeral ports on one address.
func source(i int) *net.TCPAddr {
	n := 2 + i/20000
	return &net.TCPAddr{IP: net.IPv4(127, 0, byte(n/256), byte(n%256))}
}

// Run performs one bench run.
func Run(ctx context.Context, o Options) (*Result, error) {
	for _, a := range []string{o.Proxy, o.Upstream} {
		if err := CheckLoopback(a); err != nil {
			return nil, err
		}
	}
	if o.Mailbox == "" {
		o.Mailbox = "INBOX"
	}
	if o.Connecting <= 0 {
		o.Connecting = 100
	}
	if o.Wait <= 0 {
		o.Wait = 30 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	res := &Result{Clients: o.Clients, Messages: o.Messages}
	start := time.Now()
	clients, connTimes, err := connect(ctx, o, res)
	defer func() {
		for _, cl := range clients {
			if cl != nil {
				cl.c.Close()
			}
		}
	}()
	if err != nil && res.Connected == 0 {
		return nil, err
	}
	res.ConnectTotal = time.Since(start)
	res.ConnectP50, _, _, res.ConnectMax = quantiles(connTimes)
	if o.PID > 0 {
		res.RSSKiB = rss(o.PID)
		if res.Connected > 0 {
			res.RSSPerClientKiB = float64(res.RSSKiB) / float64(res.Connected)
		}
	}

	base, appended, err := inject(ctx, o)
	if err != nil {
		return res, fmt.Errorf("injecting: %w", err)
	}
	target := base + uint32(len(appended))
	deadline := time.Now().Add(o.Wait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		done := 0
		for _, cl := range clients {
			if cl != nil && cl.seen() >= target {
				done++
			}
		}
		fmt.Fprintf(o.Progress, "\rwaiting for EXISTS %d: %d/%d clients", target, done, res.Connected)
		if done == res.Connected {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintln(o.Progress)

	var lats []time.Duration
	for _, cl := range clients {
		if cl == nil {
			continue
		}
		cl.mu.Lock()
		seen := map[uint32]bool{}
		for _, e := range cl.exists {
			if seen[e.n] {
				res.Dups++
			}
			seen[e.n] = true
		}
		for k, t := range appended {
			want := base + uint32(k) + 1
			i := sort.Search(len(cl.exists), func(i int) bool { return cl.exists[i].n >= want })
			if i == len(cl.exists) {
				res.Missed++
				continue
			}
			lats = append(lats, cl.exists[i].t.Sub(t))
			res.Deliveries++
		}
		cl.mu.Unlock()
	}
	res.LatencyP50, res.LatencyP90, res.LatencyP99, res.LatencyMax = quantiles(lats)
	if o.MetricsURL != "" {
		res.UpstreamConnections, res.FanoutLatencyMeanSeconds, res.FanoutLatencyP99AtMost = scrape(o.MetricsURL)
	}
	res.Duration = time.Since(start)
	return res, nil
}

func (cl *client) seen() uint32 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if len(cl.exists) == 0 {
		return 0
	}
	return cl.exists[len(cl.exists)-1].n
}

// connect logs every client in, SELECTs and starts IDLE.
func connect(ctx context.Context, o Options, res *Result) ([]*client, []time.Duration, error) {
	clients := make([]*client, o.Clients)
	times := make([]time.Duration, o.Clients)
	var connected atomic.Int64
	var firstErr error
	var errOnce sync.Once
	sem := make(chan struct{}, o.Connecting)
	var wg sync.WaitGroup
	for i := 0; i < o.Clients && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			cl, err := dialClient(o, i)
			if err != nil {
				errOnce.Do(func() { firstErr = fmt.Errorf("client %d: %w", i, err) })
				return
			}
			times[i] = time.Since(t0)
			clients[i] = cl
			if n := connected.Add(1); n%100 == 0 || int(n) == o.Clients {
				fmt.Fprintf(o.Progress, "\rconnected %d/%d", n, o.Clients)
			}
		}()
	}
	wg.Wait()
	fmt.Fprintln(o.Progress)
	res.Connected = int(connected.Load())
	if firstErr != nil {
		res.FirstError = firstErr.Error()
	}
	var ok []time.Duration
	for i, t := range times {
		if clients[i] != nil {
			ok = append(ok, t)
		}
	}
	return clients, ok, firstErr
}

func dialClient(o Options, i int) (*client, error) {
	cl := &client{}
	d := &net.Dialer{LocalAddr: source(i), Timeout: 30 * time.Second}
	conn, err := d.Dial("tcp", o.Proxy)
	if err != nil {
		return nil, err
	}
	cl.c = imapclient.New(conn, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(m *imapclient.UnilateralDataMailbox) {
			if m.NumMessages != nil {
				now := time.Now()
				cl.mu.Lock()
				cl.exists = append(cl.exists, existsAt{*m.NumMessages, now})
				cl.mu.Unlock()
			}
		},
	}})
	user := o.User
	if o.UserTemplate != "" {
		user = strings.ReplaceAll(o.UserTemplate, "%d", strconv.Itoa(i))
	}
	if err := cl.c.Login(user, o.Password).Wait(); err != nil {
		cl.c.Close()
		return nil, err
	}
	if _, err := cl.c.Select(o.Mailbox, nil).Wait(); err != nil {
		cl.c.Close()
		return nil, err
	}
	if cl.idle, err = cl.c.Idle(); err != nil {
		cl.c.Close()
		return nil, err
	}
	return cl, nil
}

// inject appends the messages on the upstream at the rate asked and
// returns the message count before, and when each APPEND completed.
func inject(ctx context.Context, o Options) (uint32, []time.Time, error) {
	c, err := imapclient.DialInsecure(o.Upstream, nil)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	if err := c.Login(o.UpstreamUser, o.UpstreamPassword).Wait(); err != nil {
		return 0, nil, err
	}
	st, err := c.Status(o.Mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil {
		return 0, nil, errors.Join(err, errors.New("STATUS gave no MESSAGES"))
	}
	var gap time.Duration
	if o.Rate > 0 {
		gap = time.Duration(float64(time.Second) / o.Rate)
	}
	var done []time.Time
	for k := 0; k < o.Messages && ctx.Err() == nil; k++ {
		msg := fmt.Sprintf("From: bench@example.org\r\nSubject: bench %d\r\n\r\nmessage %d\r\n", k, k)
		cmd := c.Append(o.Mailbox, int64(len(msg)), nil)
		cmd.Write([]byte(msg))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			return 0, nil, err
		}
		done = append(done, time.Now())
		fmt.Fprintf(o.Progress, "\rappended %d/%d", k+1, o.Messages)
		if gap > 0 {
			time.Sleep(gap)
		}
	}
	fmt.Fprintln(o.Progress)
	return *st.NumMessages, done, nil
}

func quantiles(d []time.Duration) (p50, p90, p99, max time.Duration) {
	if len(d) == 0 {
		return
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.90), at(0.99), s[len(s)-1]
}

func rss(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}
