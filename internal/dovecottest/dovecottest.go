// Package dovecottest starts a real, private Dovecot IMAP server on loopback
// for tests.
//
// A fake server only shows how we think IMAP behaves; a real Dovecot shows how
// the upstream we proxy to actually behaves (IDLE timing, per-user connection
// limits, APPENDUID, disconnects). Each Server owns a temp dir holding its
// config, sockets, logs and maildirs, and its own ports, so many tests and
// packages can run instances side by side. Dovecot runs in the foreground
// (dovecot -F) as a child of the test binary so a test can kill and restart
// it to simulate upstream failures.
//
// Linux only (it reads /proc) and it must run as root, because Dovecot
// drops privileges to the nobody, dovenull and dovecot users.
package dovecottest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Server is a private Dovecot instance owned by one test.
type Server struct {
	Addr    string // 127.0.0.1:PORT, plaintext IMAP (no STARTTLS required; plaintext auth allowed)
	TLSAddr string // 127.0.0.1:PORT, implicit TLS (self-signed cert)
	CertPEM []byte // the self-signed cert (for client RootCAs), CN/SAN 127.0.0.1 and localhost
	Dir     string // temp dir holding config, logs, mail
	Conf    string // path of dovecot.conf

	bin      string            // path of the dovecot binary
	greeting string            // unique login_greeting: proves a greeting came from this instance
	users    map[string]string // user -> password, for Append

	mu     sync.Mutex
	cmd    *exec.Cmd     // running master, nil when stopped
	exited chan struct{} // closed once cmd has exited
}

// Options configures Start.
type Options struct {
	Users     map[string]string // user -> password; default {"user1":"pass1"} when nil
	ExtraConf string            // appended verbatim to dovecot.conf
	// MaxSessions is how many sessions of one user from one IP the
	// instance must hold at once (default and minimum 100): a storm of
	// 1,000 clients directly against Dovecot needs 1,000 imap processes.
	// The process and client limits are raised with it.
	MaxSessions int
}

// defaultMaxSessions is Options.MaxSessions' default.
const defaultMaxSessions = 100

// limits returns the template's limit placeholders for opts.MaxSessions:
// one imap process per session (Dovecot's default client_limit 1 for imap)
// with headroom for the test's other connections, and imap-login's
// clients at least four per session (its default here, 4096, otherwise).
func (o Options) limits() (userIP, procs, clients int) {
	n := max(o.MaxSessions, defaultMaxSessions)
	return n, max(1024, n+n/4), max(4096, 4*n)
}

const (
	dhPath       = "/usr/share/dovecot/dh.pem"
	readyTimeout = 30 * time.Second // generous: a loaded machine was seen to stall startup >10s
	logName      = "dovecot.log"
	stderrName   = "stderr.log"
)

// Start starts Dovecot (dovecot -F -c Conf as a child process), waits for the
// greeting on Addr, and registers t.Cleanup to stop it, print the tail of
// Dovecot's log if the test failed, and remove Dir.
// If Dovecot is not installed (or we are not root) the test is skipped, unless
// CI=true, where a silently skipped upstream test would hide regressions.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, why := findDovecot()
	if why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("dovecottest: %s (CI=true, so not skipping)", why)
		}
		t.Skipf("dovecottest: %s; skipping", why)
	}
	users := opts.Users
	if users == nil {
		users = map[string]string{"user1": "pass1"}
	}
	// os.MkdirTemp rather than t.TempDir: base_dir holds unix sockets, whose
	// paths must stay under 108 bytes, and subtest names can be long.
	dir, err := os.MkdirTemp("", "dovecottest-")
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	tok := make([]byte, 8)
	rand.Read(tok)
	s := &Server{
		Dir:      dir,
		Conf:     filepath.Join(dir, "dovecot.conf"),
		bin:      bin,
		greeting: "dovecottest " + hex.EncodeToString(tok),
		users:    users,
	}
	t.Cleanup(func() { s.cleanup(t) }) // registered first so a failed Start still cleans up
	if err := s.writeFiles(); err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	// Free ports are found by binding :0 and closing, so another process may
	// grab one before Dovecot binds it: then try again with fresh ports.
	for attempt := 1; ; attempt++ {
		if err := s.writeConf(opts); err != nil {
			t.Fatalf("dovecottest: %v", err)
		}
		err := s.launch()
		if err == nil {
			return s
		}
		if !errors.Is(err, errAddrInUse) || attempt == 5 {
			t.Fatalf("dovecottest: start: %v", err) // cleanup prints the log
		}
	}
}

// findDovecot returns the dovecot binary, or why Dovecot cannot be used here.
func findDovecot() (bin, why string) {
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		bin = "/usr/sbin/dovecot" // PATH often lacks /usr/sbin
		if _, err := os.Stat(bin); err != nil {
			return "", "dovecot is not installed (apt-get install -y dovecot-imapd)"
		}
	}
	if os.Geteuid() != 0 {
		return "", "Dovecot tests must run as root (Dovecot switches to the nobody/dovenull users)"
	}
	return bin, ""
}

// writeFiles writes everything except dovecot.conf: the TLS cert and key, the
// passwd-file and the mail dir. Dir is made world-traversable because Dovecot's
// unprivileged processes (auth as dovecot, mail as nobody) read files in it.
func (s *Server) writeFiles() error {
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		return err
	}
	certPEM, keyPEM, err := selfSignedCert()
	if err != nil {
		return err
	}
	s.CertPEM = certPEM
	var passwd strings.Builder
	for u, p := range s.users {
		if strings.ContainsAny(u+p, ":\n") {
			return fmt.Errorf("user %q or its password contains ':' or a newline", u)
		}
		fmt.Fprintf(&passwd, "%s:{PLAIN}%s::::::\n", u, p)
	}
	for name, data := range map[string][]byte{
		"cert.pem": certPEM,
		"key.pem":  keyPEM, // read by Dovecot's config process, which runs as root
		"passwd":   []byte(passwd.String()),
	} {
		if err := os.WriteFile(filepath.Join(s.Dir, name), data, 0o644); err != nil {
			return err
		}
	}
	mail := filepath.Join(s.Dir, "mail")
	if err := os.Mkdir(mail, 0o700); err != nil {
		return err
	}
	// Mail processes cannot run as root, so they run as nobody:nogroup.
	uid, gid, err := lookupIDs("nobody", "nogroup")
	if err != nil {
		return err
	}
	return os.Chown(mail, uid, gid)
}

func lookupIDs(userName, groupName string) (uid, gid int, err error) {
	u, err := user.Lookup(userName)
	if err != nil {
		return 0, 0, err
	}
	g, err := user.LookupGroup(groupName)
	if err != nil {
		return 0, 0, err
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(g.Gid)
	return uid, gid, nil
}

// selfSignedCert returns a fresh ECDSA P-256 cert and key (PEM) valid for
// 127.0.0.1 and localhost. It is its own CA so CertPEM can go straight into
// a client's RootCAs.
func selfSignedCert() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// All n listeners stay open until every port is picked: closing one before
// binding the next lets the kernel hand the same port out twice, and Dovecot
// then refuses its config ("duplicate listener").
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// writeConf picks two free ports and writes dovecot.conf for them.
func (s *Server) writeConf(opts Options) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	port, tlsPort := ports[0], ports[1]
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	userIP, procs, clients := opts.limits()
	r := strings.NewReplacer("{DIR}", s.Dir, "{PORT}", strconv.Itoa(port),
		"{TLSPORT}", strconv.Itoa(tlsPort), "{GREETING}", s.greeting,
		"{USERIP}", strconv.Itoa(userIP), "{PROCS}", strconv.Itoa(procs), "{CLIENTS}", strconv.Itoa(clients))
	conf := r.Replace(confTemplate)
	if _, err := os.Stat(dhPath); err == nil {
		// Dovecot needs it only when a client negotiates a DHE suite; Go
		// clients use ECDHE, so without the file TLS tests still work.
		conf += "ssl_dh = <" + dhPath + "\n"
	}
	conf += opts.ExtraConf + "\n"
	return os.WriteFile(s.Conf, []byte(conf), 0o644)
}

// confTemplate is the private Dovecot config. The limits are raised so one
// test can hold 100 concurrent sessions (Options.MaxSessions) for one user
// from one IP (a proxy's upstream connections all share 127.0.0.1):
// mail_max_userip_connections defaults to 10, and the default imap-login
// runs one process per connection.
const confTemplate = `# Written by dovecottest for one test; deleted when the test ends.
base_dir = {DIR}/run
state_dir = {DIR}/state
log_path = {DIR}/dovecot.log
log_timestamp = "%H:%M:%S.%{usecs} "
auth_verbose = yes
listen = 127.0.0.1
protocols = imap
login_greeting = {GREETING}

ssl = yes
ssl_cert = <{DIR}/cert.pem
ssl_key = <{DIR}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
# By default each failed login is answered after 2s plus a per-IP penalty
# growing to 15s, which would make auth tests crawl. With these, 2.3.19 still
# answers a failure after about 0.5s (its failure queue is flushed every 500ms).
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}

passdb {
  driver = passwd-file
  args = scheme=PLAIN {DIR}/passwd
}
userdb {
  driver = passwd-file
  args = {DIR}/passwd
  default_fields = home={DIR}/mail/%u
}
mail_location = maildir:{DIR}/mail/%u
mail_uid = nobody
mail_gid = nogroup

namespace inbox {
  inbox = yes
  mailbox Drafts {
    special_use = \Drafts
    auto = subscribe
  }
  mailbox Junk {
    special_use = \Junk
    auto = subscribe
  }
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
  mailbox Trash {
    special_use = \Trash
    auto = subscribe
  }
}

# Lets Connections count sessions from process titles.
verbose_proctitle = yes
mailbox_idle_check_interval = 1 secs
mail_max_userip_connections = {USERIP}

default_process_limit = {PROCS}
default_client_limit = {CLIENTS}
service imap-login {
  inet_listener imap {
    port = {PORT}
  }
  inet_listener imaps {
    port = {TLSPORT}
    ssl = yes
  }
  # One long-lived login process serving every client, started at once so
  # the first connection does not wait for a fork.
  service_count = 0
  process_min_avail = 1
  client_limit = {CLIENTS}
}
service imap {
  process_limit = {PROCS}
}
`

// errAddrInUse marks a launch that failed because a port was taken.
var errAddrInUse = errors.New("address already in use")

// launch starts the master on the current config and waits until it greets
// on Addr. The caller must not hold s.mu.
func (s *Server) launch() error {
	logOff := fileSize(filepath.Join(s.Dir, logName))
	errOff := fileSize(filepath.Join(s.Dir, stderrName))
	out, err := os.OpenFile(filepath.Join(s.Dir, stderrName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(s.bin, "-F", "-c", s.Conf)
	// A file, not a pipe: a pipe would be inherited by every Dovecot child and
	// cmd.Wait would block until all of them exit.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // Kill and cleanup signal the whole process group
		Pdeathsig: syscall.SIGKILL, // no orphaned Dovecot if the test binary dies
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-exited:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			msg := readFrom(filepath.Join(s.Dir, stderrName), errOff) + readFrom(filepath.Join(s.Dir, logName), logOff)
			if strings.Contains(msg, "Address already in use") || strings.Contains(msg, "duplicate listener") {
				return fmt.Errorf("%w: %s", errAddrInUse, strings.TrimSpace(msg))
			}
			return fmt.Errorf("dovecot exited (%v): %s", cmd.ProcessState, strings.TrimSpace(msg))
		default:
		}
		if s.greeted() {
			return nil
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("no greeting on %s after %v", s.Addr, readyTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// greeted reports whether Addr answers with this instance's greeting. The
// token matters: if another process took our port, its greeting must not
// count as ours.
func (s *Server) greeted() bool {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "* OK") && strings.Contains(line, s.greeting)
}

// signal sends sig to the master's process group (master and all children).
// It returns the exited channel of the signalled master, or nil if none runs.
func (s *Server) signal(sig syscall.Signal) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	syscall.Kill(-s.cmd.Process.Pid, sig)
	return s.exited
}

// Kill SIGKILLs the master and all its children at once, like a crashed
// host, and returns once the master has exited and both ports are free, so a
// new connection is refused rather than accepted by a dying login process.
func (s *Server) Kill() error {
	exited := s.signal(syscall.SIGKILL)
	if exited == nil {
		return errors.New("dovecottest: Kill: dovecot is not running")
	}
	<-exited
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for !portsFree(s.Addr, s.TLSAddr) {
		if time.Now().After(deadline) {
			return fmt.Errorf("dovecottest: Kill: %s or %s still bound after 2s", s.Addr, s.TLSAddr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// portsFree reports whether nothing listens on the addresses any more. Like
// Dovecot, net.Listen sets SO_REUSEADDR, so closed connections in TIME_WAIT
// do not count.
func portsFree(addrs ...string) bool {
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// Restart starts Dovecot again on the same ports, config and mail dir (killing
// it first if it still runs) and waits for the greeting. A port can stay busy
// briefly after Kill, so binding is retried for up to 5s.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill() // the only error is "not running", which is fine
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.launch()
		if err == nil {
			return
		}
		// A killed child may still hold a socket for a moment; Dovecot
		// then refuses to start ("Dovecot is already running?").
		retry := errors.Is(err, errAddrInUse) || strings.Contains(err.Error(), "already running")
		if !retry || time.Now().After(deadline) {
			t.Fatalf("dovecottest: restart: %v", err) // cleanup prints the log
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cleanup stops Dovecot, logs the tail of its log if the test failed, and
// removes Dir. Only a failed test gets a graceful stop (SIGTERM, SIGKILL after
// 3s), so that the log printed is complete. A passing test's instance is
// SIGKILLed at once: it is thrown away anyway, and Dovecot 2.3's graceful
// shutdown stalls for 0.1-6s whenever SIGTERM arrives while it is forking or
// reaping a child, which is usual just after the test's clients close.
func (s *Server) cleanup(t testing.TB) {
	if t.Failed() {
		if exited := s.signal(syscall.SIGTERM); exited != nil {
			select {
			case <-exited:
			case <-time.After(3 * time.Second):
				t.Logf("dovecottest: dovecot ignored SIGTERM for 3s; killing it")
			}
		}
	}
	if exited := s.signal(syscall.SIGKILL); exited != nil { // also any straggling children
		<-exited
	}
	if t.Failed() {
		t.Logf("dovecottest: tail of Dovecot's log (%s):\n%s", s.Dir, s.logTail(40))
	}
	os.RemoveAll(s.Dir)
}

// Dial returns a client logged in as user over a direct plaintext connection,
// closed when the test ends. Call it from the test goroutine (it uses t.Fatal).
func (s *Server) Dial(t testing.TB, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := s.dial(user, pass)
	if err != nil {
		t.Fatalf("dovecottest: Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *Server) dial(user, pass string) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login %s: %w", user, err)
	}
	return c, nil
}

// Append stores msg in mailbox for user (one of Options.Users) over a
// short-lived direct connection and returns its UID (from APPENDUID). It is
// safe to call from any goroutine.
func (s *Server) Append(user, mailbox string, msg []byte, flags ...imap.Flag) (imap.UID, error) {
	pass, ok := s.users[user]
	if !ok {
		return 0, fmt.Errorf("dovecottest: Append: unknown user %q", user)
	}
	c, err := s.dial(user, pass)
	if err != nil {
		return 0, fmt.Errorf("dovecottest: Append: %w", err)
	}
	defer c.Close()
	cmd := c.Append(mailbox, int64(len(msg)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write(msg); err != nil {
		return 0, fmt.Errorf("dovecottest: Append: %w", err)
	}
	if err := cmd.Close(); err != nil {
		return 0, fmt.Errorf("dovecottest: Append: %w", err)
	}
	data, err := cmd.Wait()
	if err != nil {
		return 0, fmt.Errorf("dovecottest: Append: %w", err)
	}
	c.Logout().Wait()
	if data.UID == 0 {
		return 0, errors.New("dovecottest: Append: no APPENDUID in the response")
	}
	return data.UID, nil
}

// Connections returns how many logged-in IMAP sessions this instance has for
// user, read fresh from /proc on every call. With verbose_proctitle Dovecot
// titles each session process "dovecot/imap [USER IP STATE]"; only children
// of this master count, so other tests' instances with the same user do not.
// A session appears (and disappears) a few ms after the client sees the
// LOGIN reply (or the close), so callers should poll.
func (s *Server) Connections(user string) (int, error) {
	titles, err := s.Sessions(user)
	return len(titles), err
}

// Sessions returns the process titles of user's IMAP sessions, such as
// "dovecot/imap [user1 127.0.0.1 IDLE]" (verbose_proctitle appends the
// command running), so a test can count, say, the sessions in IDLE.
func (s *Server) Sessions(user string) ([]string, error) {
	s.mu.Lock()
	var master int
	if s.cmd != nil {
		master = s.cmd.Process.Pid
	}
	s.mu.Unlock()
	if master == 0 {
		return nil, nil
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []string
	want := "[" + user + " "
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || parentPID(pid) != master {
			continue
		}
		title, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.HasPrefix(title, []byte("dovecot/imap ")) && bytes.Contains(title, []byte(want)) {
			out = append(out, string(bytes.TrimRight(title, "\x00")))
		}
	}
	return out, nil
}

// parentPID returns pid's parent from /proc/PID/stat, or 0 if pid is gone.
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "PID (COMM) STATE PPID ...": COMM may contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// Doveadm runs doveadm -c Conf args... and returns its stdout; on failure
// the error includes stderr.
func (s *Server) Doveadm(args ...string) ([]byte, error) {
	bin, err := exec.LookPath("doveadm")
	if err != nil {
		bin = "/usr/bin/doveadm"
	}
	out, err := exec.Command(bin, append([]string{"-c", s.Conf}, args...)...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = fmt.Errorf("doveadm %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(ee.Stderr))
	}
	return out, err
}

// logTail returns the last n lines of Dovecot's stderr and log file.
func (s *Server) logTail(n int) string {
	text := readFrom(filepath.Join(s.Dir, stderrName), 0) + readFrom(filepath.Join(s.Dir, logName), 0)
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns the content of path from offset on ("" if unreadable).
func readFrom(path string, off int64) string {
	b, err := os.ReadFile(path)
	if err != nil || off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}
