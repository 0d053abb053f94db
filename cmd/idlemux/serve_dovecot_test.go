package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/idlemux/idlemux/internal/dovecottest"
	"github.com/idlemux/idlemux/internal/procfs"
)

// rssKiB reads a process's resident set size from /proc.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	n, err := procfs.KiB(pid, "status", "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeBinaryAgainstDovecot runs the real binary (`idlemux serve`) in
// front of a real Dovecot: 50 clients IDLE through it on one upstream IDLE,
// new mail reaches all of them, the process's memory per idle client is
// reported, and SIGTERM says BYE to every client and exits in time.
func TestServeBinaryAgainstDovecot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const user, pass = "alice", "secret"
	dv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{user: pass}})
	for i := 0; i < 3; i++ {
		if _, err := dv.Append(user, "INBOX", []byte(fmt.Sprintf("Subject: seed %d\r\n\r\nhello\r\n", i))); err != nil {
			t.Fatal(err)
		}
	}

	addr := freePort(t)
	cfg := fmt.Sprintf("listeners:\n  - address: %s\n    tls: none\nupstream:\n  address: %s\n  tls: none\nlog:\n  level: warn\n", addr, dv.Addr)
	sb := startServe(t, addr, cfg)
	cmd, logs, exited := sb.cmd, sb.logs, sb.exited
	rss0 := rssKiB(t, cmd.Process.Pid)

	const n = 50
	type client struct {
		c      *imapclient.Client
		idle   *imapclient.IdleCommand
		exists chan uint32
		bye    chan struct{}
	}
	clients := make([]*client, n)
	for i := range clients {
		cl := &client{exists: make(chan uint32, 16)}
		c, err := imapclient.DialInsecure(addr, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					cl.exists <- *d.NumMessages
				}
			},
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Login(user, pass).Wait(); err != nil {
			t.Fatalf("client %d login: %v", i, err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatalf("client %d select: %v", i, err)
		}
		if cl.idle, err = c.Idle(); err != nil {
			t.Fatalf("client %d idle: %v", i, err)
		}
		cl.c = c
		clients[i] = cl
	}
	time.Sleep(500 * time.Millisecond)
	rss1 := rssKiB(t, cmd.Process.Pid)
	sessions, err := dv.Sessions(user)
	if err != nil {
		t.Fatal(err)
	}
	idle := 0
	for _, s := range sessions {
		if strings.Contains(s, " IDLE]") {
			idle++
		}
	}
	t.Logf("idlemux serve with %d idle clients: RSS %d KiB (%d KiB before clients, %.1f KiB per client); Dovecot sessions %d, in IDLE %d",
		n, rss1, rss0, float64(rss1-rss0)/n, len(sessions), idle)
	if idle != 1 || len(sessions) > 5 {
		t.Fatalf("Dovecot sessions: %v; want one in IDLE and at most 5 in all", sessions)
	}

	if _, err := dv.Append(user, "INBOX", []byte("Subject: new\r\n\r\nnew mail\r\n")); err != nil {
		t.Fatal(err)
	}
	for i, cl := range clients {
		select {
		case got := <-cl.exists:
			if got != 4 {
				t.Fatalf("client %d: got * %d EXISTS, want 4", i, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("client %d: no EXISTS for new mail", i)
		}
	}

	reload := func(content string) { sb.reload(t, content) }

	// SIGHUP with an invalid file: rejected, logged, the old config serves on.
	reload("listeners: [\n")
	waitLog(t, logs, "reload rejected", "no log line saying the invalid reload was rejected")
	if c, err := net.Dial("tcp", addr); err != nil {
		t.Fatalf("after a rejected reload: %v", err)
	} else {
		c.Close()
	}

	// SIGHUP with the log level raised to debug: applied at once, so a new
	// connection's debug line appears.
	// The notice is logged just before the change: a connection may
	// beat it, so connect until one logs at debug.
	reload(strings.Replace(cfg, "level: warn", "level: debug", 1))
	waitLog(t, logs, "log level changing", "no log line saying the log level changed")
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err != nil {
			t.Fatalf("after a reload to debug: %v", err)
		} else {
			c.Close()
		}
		if sawLog(logs, `"level":"debug"`, 200*time.Millisecond) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no debug line after the level was raised to debug")
		}
	}

	// A raw client, to see the BYE itself on the wire.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rr := bufio.NewReader(raw)
	fmt.Fprintf(raw, "a LOGIN %s %s\r\nb SELECT INBOX\r\nc IDLE\r\n", user, pass)
	for {
		raw.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := rr.ReadString('\n')
		if err != nil {
			t.Fatalf("raw client: %v", err)
		}
		if strings.HasPrefix(l, "+ ") {
			break
		}
	}

	// Graceful shutdown: every client is told BYE, the process exits 0.
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("idlemux exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("idlemux did not exit within 15s of SIGTERM")
	}
	t.Logf("SIGTERM to exit with %d clients: %v", n, time.Since(start))
	for i, cl := range clients {
		select {
		case <-cl.c.Closed():
		case <-time.After(5 * time.Second):
			t.Fatalf("client %d still connected after shutdown", i)
		}
	}
	var rest strings.Builder
	for {
		raw.SetReadDeadline(time.Now().Add(5 * time.Second))
		l, err := rr.ReadString('\n')
		rest.WriteString(l)
		if err != nil {
			break
		}
	}
	if !strings.Contains(rest.String(), "* BYE") {
		t.Fatalf("idling client got %q at shutdown, want * BYE", rest.String())
	}
}

// servedBinary is `idlemux serve` running as a child of the test.
type servedBinary struct {
	cmd     *exec.Cmd
	cfgPath string
	logs    chan string // its stderr, line by line; lines beyond 1000 unread are dropped
	exited  chan error  // cmd.Wait's result
}

// startServe builds the binary, writes cfg and runs `idlemux serve` on it
// until the test ends; it returns once addr (cfg's listener) accepts.
func startServe(t *testing.T, addr, cfg string) *servedBinary {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "idlemux")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sb := &servedBinary{cfgPath: filepath.Join(dir, "idlemux.yaml"), logs: make(chan string, 1000), exited: make(chan error, 1)}
	if err := os.WriteFile(sb.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sb.cmd = exec.Command(bin, "serve", "--config", sb.cfgPath)
	stderr, _ := sb.cmd.StderrPipe()
	if err := sb.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case sb.logs <- sc.Text():
			default:
			}
		}
	}()
	go func() { sb.exited <- sb.cmd.Wait() }()
	t.Cleanup(func() {
		sb.cmd.Process.Kill()
		<-sb.exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return sb
		}
		if time.Now().After(deadline) {
			t.Fatalf("idlemux did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reload rewrites the config file and sends SIGHUP.
func (sb *servedBinary) reload(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(sb.cfgPath, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sb.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// waitLog reads the binary's log lines until one contains want, failing
// with missing after 5 s.
// sawLog reports whether a line containing want arrives within d.
func sawLog(logs <-chan string, want string, d time.Duration) bool {
	deadline := time.After(d)
	for {
		select {
		case l := <-logs:
			if strings.Contains(l, want) {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

func waitLog(t *testing.T, logs <-chan string, want, missing string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case l := <-logs:
			if strings.Contains(l, want) {
				return
			}
		case <-deadline:
			t.Fatal(missing)
		}
	}
}
