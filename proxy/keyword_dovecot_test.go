package proxy

import (
	"crypto/tls"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// keywordWire makes lines comparable between Dovecot and idlemux: a tagged
// line keeps its tag and status (the texts differ), \Recent goes (issue 9
// item 4), and so does a FETCH's UID: idlemux names it in every
// unsolicited FETCH, as it always has, where Dovecot names it only after
// a UID command.
func keywordWire(lines []string) []string {
	uid := regexp.MustCompile(`UID [0-9]+ `)
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "* ") && !strings.HasPrefix(l, "+ ") {
			if f := strings.Fields(l); len(f) >= 2 {
				l = f[0] + " " + f[1]
			}
		}
		l = strings.NewReplacer(` \Recent`, "", `\Recent `, "", `\Recent`, "").Replace(l)
		if strings.Contains(l, " FETCH (") {
			l = uid.ReplaceAllString(l, "")
		}
		out = append(out, l)
	}
	return out
}

// untilPrefix reads lines up to the first that starts with prefix.
func (rc *rawConn) untilPrefix(prefix string) []string {
	var out []string
	for {
		l := rc.line()
		out = append(out, l)
		if strings.HasPrefix(l, prefix) {
			return out
		}
	}
}

// TestDovecotNewKeywordFlags: when a new keyword appears in a mailbox,
// every session with it selected is told `* FLAGS (...)` and `* OK
// [PERMANENTFLAGS (...)]` before the FETCH that shows it (RFC 3501 7.2.6,
// 7.1), the actor included (.SILENT too), before a FETCH's own answer,
// to read-only sessions with PERMANENTFLAGS (), and only once: the same
// script runs directly on
// Dovecot and through idlemux (plain TCP, where IDLE takes the fast path,
// and TLS, where it does not), and the wires are compared.
func TestDovecotNewKeywordFlags(t *testing.T) {
	dv, p, direct := dovecotBehindPlainAndTLS(t)

	login := func(rc *rawConn, box, how string) *rawConn {
		rc.cmd("l", "LOGIN "+testUser+" "+testPass)
		if got := rc.cmd("s", how+" "+box); !strings.HasPrefix(got[len(got)-1], "s OK") {
			t.Fatalf("%s %s: got %q", how, box, got)
		}
		return rc
	}
	type via struct {
		name string
		dial func(t *testing.T) *rawConn // the observer's connection
		up   string                      // where the actor connects
		fast bool                        // an IDLE observer takes the fast path
		cut  bool                        // whose one write comes up short: the ordinary path finishes
	}
	plain := func(t *testing.T) *rawConn { return dialRaw(t, p.Addrs()[0]) }
	vias := []via{
		{name: "directly", dial: func(t *testing.T) *rawConn { return dialRaw(t, dv.Addr) }, up: dv.Addr},
		{name: "idlemux plain", dial: plain, up: p.Addrs()[0], fast: true},
		{name: "idlemux plain, fast write cut short", dial: plain, up: p.Addrs()[0], fast: true, cut: true},
		{name: "idlemux TLS", dial: func(t *testing.T) *rawConn { return dialRawTLS(t, p.Addrs()[1]) }, up: p.Addrs()[0]},
	}
	// idling starts IDLE and waits until the session is where v says.
	idling := func(t *testing.T, v via, a *rawConn) []string {
		fmt.Fprintf(a.c, "i IDLE\r\n")
		out := []string{a.line()}
		if !v.fast {
			return out
		}
		waitFastIdle(t, p)
		if v.cut {
			var cut atomic.Bool
			hook := func(raw syscall.RawConn, b []byte) (int, error) {
				if cut.CompareAndSwap(false, true) {
					return rawWriteOnce(raw, b[:min(len(b), 12)]) // mid-FLAGS
				}
				return rawWriteOnce(raw, b)
			}
			rawWriteHook.Store(&hook)
			t.Cleanup(func() {
				rawWriteHook.Store(nil)
				if !cut.Load() {
					t.Error("the fast path never wrote: the cut was not exercised")
				}
			})
		}
		return out
	}
	store := func(b *rawConn) { b.cmd("t", "STORE 1 +FLAGS ($Label1)") }
	scenarios := []struct {
		name string
		run  func(t *testing.T, v via, box string) []string
	}{
		{"NOOP observer", func(t *testing.T, v via, box string) []string {
			a := login(v.dial(t), box, "SELECT")
			store(login(dialRaw(t, v.up), box, "SELECT"))
			return append(a.cmd("n", "NOOP"), a.cmd("m", "NOOP")...)
		}},
		{"FETCH observer", func(t *testing.T, v via, box string) []string {
			a := login(v.dial(t), box, "SELECT")
			store(login(dialRaw(t, v.up), box, "SELECT"))
			return append(a.cmd("f", "FETCH 1 FLAGS"), a.cmd("n", "NOOP")...)
		}},
		{"read-only NOOP observer", func(t *testing.T, v via, box string) []string {
			a := login(v.dial(t), box, "EXAMINE")
			store(login(dialRaw(t, v.up), box, "SELECT"))
			return a.cmd("n", "NOOP")
		}},
		{"IDLE observer", func(t *testing.T, v via, box string) []string {
			a := login(v.dial(t), box, "SELECT")
			out := idling(t, v, a)
			store(login(dialRaw(t, v.up), box, "SELECT"))
			out = append(out, a.untilPrefix("* 1 FETCH")...)
			fmt.Fprintf(a.c, "DONE\r\n")
			return append(out, a.untilPrefix("i ")...)
		}},
		{"IDLE observer, change made upstream", func(t *testing.T, v via, box string) []string {
			a := login(v.dial(t), box, "SELECT")
			out := idling(t, v, a)
			store(login(dialRaw(t, dv.Addr), box, "SELECT"))
			out = append(out, a.untilPrefix("* 1 FETCH")...)
			fmt.Fprintf(a.c, "DONE\r\n")
			return append(out, a.untilPrefix("i ")...)
		}},
		{"actor", func(t *testing.T, v via, box string) []string {
			b := login(v.dial(t), box, "SELECT")
			out := b.cmd("t", "STORE 1 +FLAGS ($Label1)")
			out = append(out, b.cmd("u", "STORE 2 +FLAGS.SILENT ($Label2)")...)
			out = append(out, b.cmd("v", "UID STORE 2 +FLAGS ($Label1)")...)
			return append(out, b.cmd("n", "NOOP")...)
		}},
	}
	boxes := 0
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			var want []string
			for _, v := range vias {
				boxes++
				box := twoMessageBox(t, direct, fmt.Sprintf("Kw%d", boxes))
				got := keywordWire(sc.run(t, v, box))
				if v.up == dv.Addr && v.name == "directly" {
					want = got
					if !slices.ContainsFunc(want, func(l string) bool { return strings.HasPrefix(l, "* FLAGS (") }) {
						t.Fatalf("Dovecot sent no FLAGS: %q", want)
					}
					continue
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s:\n got %q\nwant %q (Dovecot)", v.name, got, want)
				}
			}
		})
	}
}

// dialRawTLS is dialRaw over implicit TLS.
func dialRawTLS(t *testing.T, addr string) *rawConn {
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	return rawOver(t, c, err)
}

// waitFastIdle waits until one idle set exists: a session idles on the
// fast path.
func waitFastIdle(t *testing.T, p *Server) {
	t.Helper()
	for deadline := time.Now().Add(waitLong); ; time.Sleep(5 * time.Millisecond) {
		p.idleMu.Lock()
		sets := len(p.idleSets)
		p.idleMu.Unlock()
		if sets == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle sets: got %d, want 1 (the session on the fast path)", sets)
		}
	}
}
