package proxy

import (
	"bufio"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idlemux/idlemux/internal/faultrelay"
)

// listShareBoxes are mailboxes whose LIST lines exercise the encoder: a
// modified UTF-7 name (RFC 3501 5.1.3), a name that must be quoted, a
// hierarchy with children, subscriptions for LSUB and CHILDINFO.
var listShareBoxes = []string{"Entwürfe", "with space", "a", "a.b", "a.b.c", "x.y"}

// listShareDovecot starts Dovecot with listShareBoxes (a.b.c and x.y
// subscribed, x not) and idlemux in front of it through a relay that
// delays every upstream chunk by delay, so that requests sent together
// are surely in flight together. Metrics are on, for the joins.
func listShareDovecot(t *testing.T, delay time.Duration) (dvAddr string, p *Server) {
	t.Helper()
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	for _, box := range listShareBoxes {
		if err := direct.Create(box, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	for _, box := range []string{"a.b.c", "x.y", "Entwürfe"} {
		if err := direct.Subscribe(box).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	relay := faultrelay.Start(t, dv.Addr)
	relay.SetDelay(delay)
	cfg := testConfig(relay.Addr())
	cfg.Metrics.Address = "127.0.0.1:0"
	return dv.Addr, startProxy(t, cfg)
}

// lineConn is a logged-in raw connection usable from any goroutine: its
// methods return errors instead of failing the test.
type lineConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialLines(t *testing.T, addr string) *lineConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	lc := &lineConn{c: c, r: bufio.NewReader(c)}
	if _, err := lc.readLine(); err != nil {
		t.Fatal(err)
	}
	if l, err := lc.do("l", "LOGIN "+testUser+" "+testPass); err != nil || !strings.HasPrefix(l[len(l)-1], "l OK") {
		t.Fatalf("login: %q, %v", l, err)
	}
	return lc
}

func (lc *lineConn) readLine() (string, error) {
	lc.c.SetReadDeadline(time.Now().Add(waitLong))
	l, err := lc.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

// do sends one command and returns its lines up to the tagged one.
func (lc *lineConn) do(tag, cmd string) ([]string, error) {
	if _, err := fmt.Fprintf(lc.c, "%s %s\r\n", tag, cmd); err != nil {
		return nil, err
	}
	var out []string
	for {
		l, err := lc.readLine()
		if err != nil {
			return out, err
		}
		out = append(out, l)
		if strings.HasPrefix(l, tag+" ") {
			return out, nil
		}
	}
}

// untagged checks that an answer ended OK and returns its untagged lines.
func untagged(lines []string, tag string) ([]string, error) {
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], tag+" OK") {
		return nil, fmt.Errorf("got %q, want %s OK", lines, tag)
	}
	return lines[:len(lines)-1], nil
}

// localAnswers scrapes idlemux_commands_local_total for command.
func localAnswers(t testing.TB, p *Server, command string) int {
	t.Helper()
	_, body := scrape(t, "http://"+p.MetricsAddr()+"/metrics")
	m := regexp.MustCompile(`(?m)^idlemux_commands_local_total\{command="` + command + `"\} (\d+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestDovecotListShared: identical LIST, LSUB and NAMESPACE requests
// sent at once by many sessions of one account share upstream commands
// (issue 11): every session's answer is Dovecot's own answer to the same
// command directly, byte for byte (names quoted or not as Dovecot does,
// CHILDINFO, several patterns in one command), and fewer upstream commands ran than clients asked
// (the joins, counted by idlemux_commands_local_total, are the
// difference).
func TestDovecotListShared(t *testing.T) {
	dvAddr, p := listShareDovecot(t, 30*time.Millisecond)
	const n = 6
	var through []*lineConn
	for range n {
		through = append(through, dialLines(t, p.Addrs()[0]))
	}
	direct := dialLines(t, dvAddr)
	for _, tc := range []struct {
		name, metric, cmd string
		requoted          bool // decoded and re-encoded: see unquoteName
	}{
		{"all", "LIST", `LIST "" *`, false},
		{"delimiter", "LIST", `LIST "" ""`, false},
		{"top level", "LIST", `LIST "" %`, false},
		{"reference", "LIST", `LIST "a" %`, false},
		{"utf7 pattern", "LIST", `LIST "" "Entw&APw-*"`, false},
		{"subscribed", "LIST", `LIST (SUBSCRIBED) "" *`, false},
		{"childinfo", "LIST", `LIST (SUBSCRIBED RECURSIVEMATCH) "" %`, false},
		{"return children", "LIST", `LIST "" % RETURN (CHILDREN SUBSCRIBED)`, false},
		{"patterns", "LIST", `LIST "" ("a*" "w*")`, false},
		{"lower case", "LIST", `list "" "*"`, false},
		{"literal", "LIST", "LIST \"\" {1+}\r\n*", true},
		{"lsub literal", "LSUB", "LSUB \"\" {1+}\r\n%", true},
		{"lsub all", "LSUB", `LSUB "" *`, false},
		{"lsub percent", "LSUB", `LSUB "" %`, false},
		{"namespace", "NAMESPACE", `NAMESPACE`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dl, err := direct.do("d", tc.cmd)
			want, werr := untagged(dl, "d")
			norm := func(lines []string) []string {
				if !tc.requoted {
					return lines
				}
				out := make([]string, len(lines))
				for i, l := range lines {
					out[i] = unquoteName(l)
				}
				return out
			}
			want = norm(want)
			if err != nil || werr != nil || len(want) == 0 {
				t.Fatalf("directly: %q, %v, %v", dl, err, werr)
			}
			before := localAnswers(t, p, tc.metric)
			got := make([][]string, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, lc := range through {
				wg.Go(func() {
					<-start
					l, err := lc.do("s", tc.cmd)
					if err == nil {
						got[i], err = untagged(l, "s")
						got[i] = norm(got[i])
					}
					errs[i] = err
				})
			}
			close(start)
			wg.Wait()
			for i := range n {
				if errs[i] != nil || !slices.Equal(got[i], want) {
					t.Errorf("session %d: got %q (%v), want %q as directly", i, got[i], errs[i], want)
				}
			}
			if joins := localAnswers(t, p, tc.metric) - before; joins < 1 {
				t.Errorf("upstream %ss: got %d for %d client requests (%d joined), want fewer", tc.metric, n-joins, n, joins)
			}
		})
	}
}

// TestDovecotListReadYourWrites: a session's own CREATE, RENAME,
// SUBSCRIBE, UNSUBSCRIBE and DELETE show in its next LIST or LSUB while
// other sessions of the account LIST and LSUB the same patterns in a
// loop, whose calls it could otherwise join: a call that started before
// the change completed is never shared with a request that follows it.
func TestDovecotListReadYourWrites(t *testing.T) {
	_, p := listShareDovecot(t, 2*time.Millisecond)
	a := dialLines(t, p.Addrs()[0])
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 3 {
		lc := dialLines(t, p.Addrs()[0])
		wg.Go(func() {
			for r := 0; ; r++ {
				select {
				case <-stop:
					return
				default:
				}
				cmd := []string{`LIST "" *`, `LSUB "" *`}[(i+r)%2]
				if l, err := lc.do("b", cmd); err != nil || !strings.HasPrefix(l[len(l)-1], "b OK") {
					t.Errorf("%s in the loop: %q, %v", cmd, l, err)
					return
				}
			}
		})
	}
	defer wg.Wait()
	defer close(stop)
	has := func(cmd, box string) bool {
		l, err := a.do("a", cmd)
		lines, uerr := untagged(l, "a")
		if err != nil || uerr != nil {
			t.Fatalf("%s: %q, %v, %v", cmd, l, err, uerr)
		}
		return slices.ContainsFunc(lines, func(l string) bool { return strings.HasSuffix(l, ` "." `+box) })
	}
	for i := range 25 {
		box, moved := fmt.Sprintf("rw%d", i), fmt.Sprintf("mv%d", i)
		for _, step := range []struct {
			change, check, box string
			want               bool
		}{
			{"CREATE " + box, `LIST "" *`, box, true},
			{"RENAME " + box + " " + moved, `LIST "" *`, box, false},
			{"", `LIST "" *`, moved, true},
			{"SUBSCRIBE " + moved, `LSUB "" *`, moved, true},
			{"UNSUBSCRIBE " + moved, `LSUB "" *`, moved, false},
			{"DELETE " + moved, `LIST "" *`, moved, false},
		} {
			// Dovecot 2.3 (maildir) answers a CREATE that runs beside
			// LIST and LSUB of other sessions NO [ALREADYEXISTS] now and
			// then, directly as well (seen in 5 of 150 CREATEs). Mostly
			// the mailbox is there, and the LIST after it says so; once in
			// a while it is not (seen once in CI), and the CREATE is sent
			// again, as a client would.
			for try := 0; step.change != ""; try++ {
				l, err := a.do("c", step.change)
				exists := strings.HasPrefix(step.change, "CREATE") && strings.HasPrefix(l[len(l)-1], "c NO [ALREADYEXISTS]")
				if err != nil || !strings.HasPrefix(l[len(l)-1], "c OK") && !exists {
					t.Fatalf("%s: %q, %v", step.change, l, err)
				}
				if !exists || try == 2 || has(step.check, step.box) {
					break
				}
				t.Logf("round %d: %s answered %q and the mailbox is not listed: sent again", i, step.change, l[len(l)-1])
			}
			if got := has(step.check, step.box); got != step.want {
				t.Fatalf("round %d, after %q: %s lists %s: got %v, want %v", i, step.change, step.check, step.box, got, step.want)
			}
		}
	}
}
