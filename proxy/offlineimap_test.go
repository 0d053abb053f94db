package proxy

// End-to-end test with offlineimap3 (Debian's offlineimap3 package), a client
// that IDLEs on several folders of one account at once, each on its own
// connection: more folders than idlemux's watcher slots at the default
// max_connections_per_account, so some of them are polled (upstream/polled.go).

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// oiFolders are the mailboxes offlineimap IDLEs on: 8, more than the 4
// watcher slots of the default max_connections_per_account (5).
var oiFolders = []string{"Idle1", "Idle2", "Idle3", "Idle4", "Idle5", "Idle6", "Idle7", "Idle8"}

// oiIdleWait bounds how long a message appended upstream may take to reach
// offlineimap's Maildir while it idles (poll_interval is 1 s in this test).
const oiIdleWait = 30 * time.Second

// oiBuffer is an io.Writer whose contents can be read while a process
// writes to it.
type oiBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *oiBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *oiBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// oiConfig writes an offlineimaprc for a sync of oiFolders from the IMAP
// server at addr into a Maildir under dir, IDLEing on all of them when
// offlineimap runs with autorefresh (-o ignores autorefresh and idlefolders).
// autorefresh is 10 minutes, so that within the test only IDLE brings mail.
//
// maxconnections must be given: offlineimap3 (0.0~git20211018) raises its
// connection cap to len(idlefolders) (repository/IMAP.py getmaxconnections)
// but limits its folder threads to the configured maxconnections, default 2
// (init.py initInstanceLimit), so it opens 2 connections; and its keepalive
// starts an IDLE only on idlefolders[i] for i below the number of open
// connections (imapserver.py keepalive). Without it offlineimap silently
// IDLEs on 2 of the 8 folders, directly as through idlemux.
func oiConfig(t *testing.T, dir, addr string) string {
	t.Helper()
	host, port := rcHostPort(t, addr)
	var quoted []string
	for _, f := range oiFolders {
		quoted = append(quoted, fmt.Sprintf("'%s'", f))
	}
	list := "[" + strings.Join(quoted, ", ") + "]"
	rc := fmt.Sprintf(`[general]
accounts = T
metadata = %[1]s/meta
maxsyncaccounts = 1

[Account T]
localrepository = L
remoterepository = R
autorefresh = 10
quick = 0

[Repository L]
type = Maildir
localfolders = %[1]s/mail

[Repository R]
type = IMAP
remotehost = %[2]s
remoteport = %[3]d
remoteuser = %[4]s
remotepass = %[5]s
ssl = no
starttls = no
folderfilter = lambda f: f in %[6]s
idlefolders = %[6]s
keepalive = 600
maxconnections = %[7]d
`, dir, host, port, testUser, testPass, list, len(oiFolders))
	path := filepath.Join(dir, "offlineimaprc")
	if err := os.WriteFile(path, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// oiCounts returns the number of message files in each of oiFolders' cur and
// new subfolders under maildir (0 for a folder not created yet).
func oiCounts(maildir string) map[string]int {
	counts := map[string]int{}
	for _, f := range oiFolders {
		for _, sub := range []string{"cur", "new"} {
			entries, _ := os.ReadDir(filepath.Join(maildir, f, sub))
			for _, e := range entries {
				if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
					counts[f]++
				}
			}
		}
	}
	return counts
}

// oiErrorLines returns offlineimap's ERROR lines in out.
func oiErrorLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "ERROR") {
			lines = append(lines, l)
		}
	}
	return lines
}

// oiResult is what one scenario left in the Maildir.
type oiResult struct {
	first, idled map[string]int // message counts after the one-shot sync and after IDLE
	firstTook    time.Duration
}

// TestOfflineimapIdleFolders runs offlineimap3 with 8 idlefolders against
// Dovecot directly and through idlemux (default max_connections_per_account
// of 5, so at most 4 folders are IDLEd upstream and the rest polled every
// second): a one-shot sync must bring each folder's message, and while
// offlineimap idles a message appended directly on Dovecot to each folder
// must reach every local folder within oiIdleWait. The Maildir counts
// through idlemux must equal those of the direct run.
func TestOfflineimapIdleFolders(t *testing.T) {
	bin := rcRequireTool(t, "offlineimap", "offlineimap3")
	results := map[string]oiResult{}
	for _, via := range []string{"direct", "proxy"} {
		t.Run(via, func(t *testing.T) { results[via] = oiScenario(t, bin, via == "proxy") })
	}
	d, p := results["direct"], results["proxy"]
	if d.first == nil || p.first == nil {
		return
	}
	for _, f := range oiFolders {
		if d.first[f] != p.first[f] || d.idled[f] != p.idled[f] {
			t.Errorf("folder %s: through idlemux got %d messages after the first sync and %d after IDLE; directly %d and %d",
				f, p.first[f], p.idled[f], d.first[f], d.idled[f])
		}
	}
	t.Logf("first sync of %d folders: %v directly, %v through idlemux", len(oiFolders), d.firstTook.Round(time.Millisecond), p.firstTook.Round(time.Millisecond))
}

// oiScenario seeds a private Dovecot with one message in each of oiFolders,
// syncs it once with offlineimap -o (directly or through idlemux), then runs
// offlineimap with idlefolders, appends one message to each folder directly
// on Dovecot and waits until every local folder has two.
func oiScenario(t *testing.T, bin string, viaProxy bool) oiResult {
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	for _, f := range oiFolders {
		if err := direct.Create(f, nil).Wait(); err != nil {
			t.Fatalf("direct CREATE %s: %v", f, err)
		}
		appendMsg(t, direct, f, testMessage("first in "+f))
	}
	addr := dv.Addr
	var p *Server
	if viaProxy {
		cfg := testConfig(dv.Addr) // max_connections_per_account: the default 5
		cfg.Upstream.PollInterval = time.Second
		p = startProxy(t, cfg)
		addr = p.Addrs()[0]
	}
	dir := t.TempDir()
	rc := oiConfig(t, dir, addr)
	maildir := filepath.Join(dir, "mail")
	env := []string{"HOME=" + dir}

	r := rcRunTool(t, env, bin, "-c", rc, "-u", "basic", "-o")
	if r.exit != 0 || len(oiErrorLines(string(r.stdout)+string(r.stderr))) > 0 {
		t.Fatalf("offlineimap -o: got exit %d, want 0 and no ERROR lines\n%v", r.exit, r)
	}
	res := oiResult{first: oiCounts(maildir), firstTook: r.took}
	t.Logf("offlineimap -o (first sync of %d folders) took %v", len(oiFolders), r.took.Round(time.Millisecond))
	for _, f := range oiFolders {
		if res.first[f] != 1 {
			t.Errorf("after offlineimap -o: local folder %s has %d messages, want 1", f, res.first[f])
		}
	}
	if t.Failed() {
		t.Fatalf("offlineimap -o output:\n%v", r)
	}

	// -d imap shows when each IDLE has started; "thread" keeps offlineimap
	// multithreaded (any other debug type forces it single-threaded, and
	// then it holds one connection and IDLEs on one folder only).
	oi := oiStart(t, env, bin, "-c", rc, "-u", "basic", "-d", "imap,thread")
	defer func() {
		if t.Failed() {
			t.Logf("offlineimap (idling) output:\n%s", oi.out.String())
		}
	}()
	oiWaitIdling(t, oi.out)
	if p != nil {
		st := p.upStats()
		t.Logf("offlineimap idling on %d folders through idlemux: %d watched upstream, %d of them polled", len(oiFolders), st.Watchers, st.Polled)
		if st.Polled == 0 {
			t.Errorf("idlemux polls no mailbox with %d idled at max_connections_per_account %d; want some polled (the case under test)",
				len(oiFolders), p.cfg.Upstream.MaxConnectionsPerAccount)
		}
	}
	res.idled = oiAwaitNewMail(t, direct, maildir)
	oi.stop(t)
	if errs := oiErrorLines(oi.out.String()); len(errs) > 0 {
		t.Errorf("offlineimap (idling) printed ERROR lines, want none:\n%s", strings.Join(errs, "\n"))
	}
	return res
}

// oiAwaitNewMail appends one message directly on Dovecot to each of
// oiFolders and waits (at most oiIdleWait) until offlineimap, idling, has
// put each into maildir; it returns the final counts.
func oiAwaitNewMail(t *testing.T, direct *imapclient.Client, maildir string) map[string]int {
	t.Helper()
	for _, f := range oiFolders {
		appendMsg(t, direct, f, testMessage("second in "+f))
	}
	start := time.Now()
	for {
		counts := oiCounts(maildir)
		done := true
		for _, f := range oiFolders {
			done = done && counts[f] >= 2
		}
		if done {
			t.Logf("all %d folders had their new message locally after %v", len(oiFolders), time.Since(start).Round(time.Millisecond))
		}
		if done || time.Since(start) > oiIdleWait {
			for _, f := range oiFolders {
				if counts[f] != 2 {
					t.Errorf("offlineimap idling on %d folders, %v after one message was appended to each directly on Dovecot: local folder %s has %d messages, want 2",
						len(oiFolders), time.Since(start).Round(time.Millisecond), f, counts[f])
				}
			}
			return counts
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// oiServerIdle is imaplib2's debug line for an IDLE the server accepted.
var oiServerIdle = regexp.MustCompile(`(?m)\(__idle\) server IDLE started`)

// oiKeepalive is offlineimap's debug line for each connection its keepalive
// thread starts an IDLE (or NOOP) thread on.
var oiKeepalive = regexp.MustCompile(`keepalive: processing connection (\d+) of (\d+)`)

// oiWaitIdling waits until offlineimap has an IDLE accepted on every one of
// oiFolders. offlineimap3 starts one IDLE thread per connection it holds
// after its sync (imapserver.py keepalive: idlefolders[i] for each i below
// the number of connections), so it IDLEs on all folders only if its folder
// threads opened that many connections.
func oiWaitIdling(t *testing.T, out *oiBuffer) {
	t.Helper()
	deadline := time.Now().Add(rcClientTimeout)
	for {
		s := out.String()
		if n := len(oiServerIdle.FindAllString(s, -1)); n >= len(oiFolders) {
			return
		}
		if m := oiKeepalive.FindStringSubmatch(s); m != nil && m[2] != strconv.Itoa(len(oiFolders)) {
			t.Fatalf("offlineimap holds %s connections after its sync, so it IDLEs on only %s of its %d idlefolders (imapserver.py keepalive); want %d",
				m[2], m[2], len(oiFolders), len(oiFolders))
		}
		if time.Now().After(deadline) {
			t.Fatalf("offlineimap: got %d IDLEs accepted after %v, want %d", len(oiServerIdle.FindAllString(s, -1)), rcClientTimeout, len(oiFolders))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// oiProc is a running offlineimap.
type oiProc struct {
	cmd  *exec.Cmd
	out  *oiBuffer
	once sync.Once
}

// oiStart starts offlineimap in its own process group, to be ended with
// stop (and by the test's cleanup at the latest).
func oiStart(t *testing.T, env []string, bin string, args ...string) *oiProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &oiProc{cmd: cmd, out: &oiBuffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start offlineimap: %v", err)
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop kills offlineimap's whole process group, reaps it, and checks that
// no process of the group is left.
func (p *oiProc) stop(t *testing.T) {
	p.once.Do(func() {
		pgid := p.cmd.Process.Pid
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil {
			t.Errorf("kill offlineimap's process group %d: %v", pgid, err)
		}
		_ = p.cmd.Wait()
		deadline := time.Now().Add(5 * time.Second)
		for syscall.Kill(-pgid, 0) == nil {
			if time.Now().After(deadline) {
				t.Errorf("offlineimap's process group %d still has processes 5 s after SIGKILL", pgid)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
