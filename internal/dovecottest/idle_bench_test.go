package dovecottest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/idlemux/idlemux/internal/procfs"
)

// instanceProcs is one look at every process of a Dovecot instance: the
// master and all its descendants.
type instanceProcs struct {
	procs    int
	sessions int   // IMAP session processes ("dovecot/imap [USER IP STATE]")
	idle     int   // of which in IDLE
	rssKiB   int64 // sum of VmRSS
	pssKiB   int64 // sum of Pss (smaps_rollup): shared pages split between their users
}

// masterPID returns the pid of the running master, or 0.
func (s *Server) masterPID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// lookProcs walks /proc for the master's descendants (by ppid chains) and
// sums their memory. A process that exits during the walk is left out.
func lookProcs(master int) (instanceProcs, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return instanceProcs{}, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid := parentPID(pid); ppid != 0 {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out instanceProcs
	for todo := []int{master}; len(todo) > 0; {
		pid := todo[len(todo)-1]
		todo = append(todo[:len(todo)-1], children[pid]...)
		rss, err := memKiB(pid, "status", "VmRSS")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return instanceProcs{}, err
		}
		pss, err := memKiB(pid, "smaps_rollup", "Pss")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return instanceProcs{}, err
		}
		out.procs++
		out.rssKiB += rss
		out.pssKiB += pss
		title, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.HasPrefix(title, []byte("dovecot/imap [")) {
			out.sessions++
			if bytes.Contains(title, []byte(" IDLE]")) {
				out.idle++
			}
		}
	}
	return out, nil
}

// memKiB is procfs.KiB where a process without the line (a zombie has no
// VmRSS) counts as 0.
func memKiB(pid int, file, key string) (int64, error) {
	n, err := procfs.KiB(pid, file, key)
	if errors.Is(err, procfs.ErrNoField) {
		return 0, nil
	}
	return n, err
}

// idleClient is one direct client in IDLE on INBOX.
type idleClient struct {
	c    *imapclient.Client
	idle *imapclient.IdleCommand
}

// dialIdle logs in, selects INBOX and starts IDLE.
func (s *Server) dialIdle(user string) (*idleClient, error) {
	c, err := s.dial(user, s.users[user])
	if err != nil {
		return nil, err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: SELECT INBOX: %w", user, err)
	}
	idle, err := c.Idle()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: IDLE: %w", user, err)
	}
	return &idleClient{c, idle}, nil
}

// dialIdleMany opens n idle clients, spread over users, a few at a time.
func (s *Server) dialIdleMany(users []string, n int) ([]*idleClient, error) {
	const parallel = 8
	clients := make([]*idleClient, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range next {
				clients[i], errs[i] = s.dialIdle(users[i%len(users)])
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeIdle(clients)
		return nil, err
	}
	return clients, nil
}

// closeIdle drops the connections without DONE or LOGOUT: Dovecot ends a
// session whose client went away.
func closeIdle(clients []*idleClient) {
	for _, ic := range clients {
		if ic != nil {
			ic.c.Close()
			ic.idle.Wait()
		}
	}
}

// waitProcs polls the instance until ok holds, for up to timeout, and
// returns the last look.
func waitProcs(master int, timeout time.Duration, ok func(instanceProcs) bool) (instanceProcs, error) {
	deadline := time.Now().Add(timeout)
	for {
		p, err := lookProcs(master)
		if err != nil || ok(p) {
			return p, err
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("not reached after %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkDovecotIdle measures what Dovecot itself holds per idle client,
// for comparison with idlemux: N direct clients log in, SELECT INBOX and
// IDLE, and the memory of every process of the instance (the master and
// its descendants) is summed before any client and with N. Dovecot runs
// one imap process per session, so RSS counts the pages those processes
// share (libraries, config) once per process; PSS splits them and is the
// honest figure. Each iteration opens the N sessions (timed, until Dovecot
// shows all N in IDLE), measures, and closes them (not timed). Metrics:
// rss-KiB/conn and pss-KiB/conn (growth over the empty instance, per
// client), procs (processes of the instance with N clients). Run with
// -benchtime 1x.
//
// Not counted: kernel memory (page tables, kernel stacks, socket buffers).
// Every session runs as nobody, so past fs.inotify.max_user_instances
// (128 by default) Dovecot logs a warning and the rest poll for changes
// instead of using inotify; that costs kernel memory, not RSS.
func BenchmarkDovecotIdle(b *testing.B) {
	for _, n := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) { benchDovecotIdle(b, n) })
	}
}

func benchDovecotIdle(b *testing.B, n int) {
	// mail_max_userip_connections is 100 per user and IP, and every client
	// comes from 127.0.0.1: 20 users hold up to 1,000 clients at 50 each.
	const (
		nUsers  = 20
		perUser = 20 // messages in each INBOX, so SELECT opens real indexes
		wait    = 60 * time.Second
	)
	users := make([]string, nUsers)
	pass := map[string]string{}
	for i := range users {
		users[i] = fmt.Sprintf("idle%02d", i)
		pass[users[i]] = "pw-" + users[i]
	}
	s := Start(b, Options{Users: pass})
	master := s.masterPID()
	for _, u := range users {
		if err := s.seedInbox(u, perUser); err != nil {
			b.Fatal(err)
		}
	}
	// One session first, so the processes every login needs (auth and
	// the like) are running before the baseline.
	warm, err := s.dialIdleMany(users[:1], 1)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := waitProcs(master, wait, func(p instanceProcs) bool { return p.idle == 1 }); err != nil {
		b.Fatalf("warm-up session not in IDLE: %v", err)
	}
	closeIdle(warm)
	base, err := waitProcs(master, wait, func(p instanceProcs) bool { return p.sessions == 0 })
	if err != nil {
		b.Fatalf("warm-up session still there: %v", err)
	}

	var rss, pss, procs float64
	for b.Loop() {
		clients, err := s.dialIdleMany(users, n)
		if err != nil {
			b.Fatal(err)
		}
		with, err := waitProcs(master, wait, func(p instanceProcs) bool { return p.idle >= n })
		b.StopTimer()
		if err != nil || with.idle != n || with.sessions != n || with.procs-base.procs < n {
			closeIdle(clients)
			b.Fatalf("%d clients in IDLE: Dovecot shows %d sessions, %d in IDLE, and %d processes (%d before any client); %v",
				n, with.sessions, with.idle, with.procs, base.procs, err)
		}
		rss += float64(with.rssKiB-base.rssKiB) / float64(n)
		pss += float64(with.pssKiB-base.pssKiB) / float64(n)
		procs += float64(with.procs)
		closeIdle(clients)
		if _, err := waitProcs(master, wait, func(p instanceProcs) bool { return p.sessions == 0 }); err != nil {
			b.Fatalf("sessions still there after their clients closed: %v", err)
		}
		b.StartTimer()
	}
	b.ReportMetric(rss/float64(b.N), "rss-KiB/conn")
	b.ReportMetric(pss/float64(b.N), "pss-KiB/conn")
	b.ReportMetric(procs/float64(b.N), "procs")
}

// seedInbox appends n small messages to user's INBOX over one connection.
func (s *Server) seedInbox(user string, n int) error {
	c, err := s.dial(user, s.users[user])
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range n {
		msg := fmt.Sprintf("From: a@example.com\r\nTo: %s@example.com\r\nSubject: seed %d\r\n"+
			"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <seed-%d-%s@example.com>\r\n\r\n%s\r\n",
			user, i, i, user, strings.Repeat("Some text of a message body. ", 40))
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		if _, err := cmd.Write([]byte(msg)); err != nil {
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		if _, err := cmd.Wait(); err != nil {
			return fmt.Errorf("%s: APPEND: %w", user, err)
		}
	}
	return c.Logout().Wait()
}
