package proxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// searchNotThrough are the realClientSearches that cannot be compared: the
// keys imapserver's parser does not know, and SEARCHRES, which idlemux
// does not advertise (Dovecot does: its "$" is the saved result, idlemux's
// is empty).
var searchNotThrough = map[string]string{
	"modseq plain and with entry":    "imapserver has no MODSEQ key",
	"WITHIN and SAVEDATE":            "imapserver has no YOUNGER, OLDER, SAVED*",
	"FUZZY":                          "imapserver has no FUZZY",
	"SEARCHRES reference":            "SEARCHRES is not advertised",
	"ESEARCH save and charset":       "SEARCHRES is not advertised",
	"CRLF at the end":                "the raw client adds the CRLF",
	"keywords":                       `Dovecot refuses KEYWORD \Seen, imapserver takes it`,
	"many literals are not keys":     "compared below with fewer literals",
	"mutt thread of 200 message-ids": "the same shape as depth at the limit",
}

// searchPair is one raw session directly on Dovecot and one through
// idlemux, both with INBOX selected, so their sequence numbers agree.
type searchPair struct{ direct, via *rawConn }

func (sp searchPair) both(t *testing.T, tag, cmd string) (direct, via []string) {
	t.Helper()
	return sp.direct.cmd(tag, cmd), sp.via.cmd(tag, cmd)
}

// status is the tagged answer's type, and its response code if any.
func status(lines []string) string {
	f := strings.Fields(lines[len(lines)-1])
	if len(f) > 2 && strings.HasPrefix(f[2], "[") {
		return f[1] + " " + f[2]
	}
	return f[1]
}

func startSearchPair(t *testing.T) searchPair {
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	subjects := []string{"smith report (Q3)", "über (x", "plain", "naïve", "a@example.org", "x", "seed", "more", "last"}
	for i, s := range subjects {
		var flags []imap.Flag
		if i%3 == 0 {
			flags = append(flags, imap.FlagSeen)
		}
		appendMsg(t, direct, "INBOX", testMessage(s), flags...)
	}
	return dialSearchPair(t, dv.Addr)
}

// dialSearchPair logs in and selects INBOX directly and through a new
// idlemux in front of dvAddr.
func dialSearchPair(t *testing.T, dvAddr string) searchPair {
	p := startProxy(t, testConfig(dvAddr))
	var sp searchPair
	for i, addr := range []string{dvAddr, p.Addrs()[0]} {
		rc := dialRaw(t, addr)
		rc.cmd("l", "LOGIN "+testUser+" "+testPass)
		rc.cmd("s", "SELECT INBOX")
		if i == 0 {
			sp.direct = rc
		} else {
			sp.via = rc
		}
	}
	return sp
}

// TestDovecotSearchSameResults: the searches real clients send, and the
// limits' edge cases, answer the same through idlemux as directly.
func TestDovecotSearchSameResults(t *testing.T) {
	sp := startSearchPair(t)
	cases := []struct{ name, args string }{
		{"literals are not keys", strings.Repeat("BODY "+literal("OR OR ( NOT")+" ", 3) + "ALL"},
		{"ESEARCH all", "RETURN (ALL) 2:*"},
		{"UID ESEARCH", "RETURN (MIN COUNT) UNSEEN"},
	}
	for _, c := range realClientSearches {
		if searchNotThrough[c.name] == "" {
			cases = append(cases, c)
		}
	}
	for i, c := range cases {
		for _, cmd := range []string{"SEARCH ", "UID SEARCH "} {
			tag := fmt.Sprintf("q%d", i)
			direct, via := sp.both(t, tag, cmd+c.args)
			if got, want := status(via), status(direct); got != want {
				t.Errorf("%s: %s%.60q: through idlemux %q, directly %q", c.name, cmd, c.args, via[len(via)-1], direct[len(direct)-1])
				continue
			}
			if got, want := strings.Join(via[:len(via)-1], "\n"), strings.Join(direct[:len(direct)-1], "\n"); got != want {
				t.Errorf("%s: %s%.60q: through idlemux %q, directly %q", c.name, cmd, c.args, got, want)
			}
		}
	}
}

// TestDovecotSearchLimits: past maxSearchDepth, and past what Dovecot's
// line takes once sequence numbers are UIDs, idlemux answers BAD [LIMIT]
// and the session goes on. Dovecot itself takes any nesting that fits its
// 64 KiB line (TestDovecotSearchDepthAccepted): that difference is the
// limit's point.
func TestDovecotSearchLimits(t *testing.T) {
	sp := startSearchPair(t)
	tests := []struct {
		name, args      string
		direct, through string
	}{
		{"OR chain past the depth limit", orChain(maxSearchDepth+1, "SEEN"), "OK", "BAD [LIMIT]"},
		{"NOT chain past the depth limit", strings.Repeat("NOT ", maxSearchDepth+1) + "SEEN", "OK", "BAD [LIMIT]"},
		// 24,000 keys "1": 48 KiB sent, each "UID n" upstream.
		{"rewrite past the upstream's line", strings.TrimSpace(strings.Repeat("9 ", 24000)), "OK", "BAD [LIMIT]"},
		{"still usable", "ALL", "OK", "OK"},
	}
	for i, tt := range tests {
		direct, via := sp.both(t, fmt.Sprintf("z%d", i), "SEARCH "+tt.args)
		if got := status(direct); got != tt.direct {
			t.Errorf("%s: directly %q, want %s", tt.name, direct[len(direct)-1], tt.direct)
		}
		if got := status(via); got != tt.through {
			t.Errorf("%s: through idlemux %q, want %s", tt.name, via[len(via)-1], tt.through)
		}
	}
}

// TestDovecotSearchDepthAccepted measures what Dovecot 2.3 takes directly:
// nesting bounded only by its 64 KiB line (imap_max_line_length), and
// what it answers past that line.
func TestDovecotSearchDepthAccepted(t *testing.T) {
	sp := startSearchPair(t)
	tests := []struct {
		name, args, want string
	}{
		{"8,190 ORs (64 KiB)", orChain(8190, "SEEN"), "OK"},
		{"30,000 parentheses", strings.Repeat("(", 30000) + "SEEN" + strings.Repeat(")", 30000), "OK"},
		{"9,000 ORs (72 KiB)", orChain(9000, "SEEN"), "BAD"},
	}
	for i, tt := range tests {
		lines := sp.direct.cmd(fmt.Sprintf("d%d", i), "SEARCH "+tt.args)
		if got := status(lines); got != tt.want {
			t.Errorf("%s: Dovecot answered %q, want %s", tt.name, lines[len(lines)-1], tt.want)
		}
	}
}

// TestDovecotSearchLargeUIDs: with UIDs of ten digits, a sequence set
// grows about sixfold once sent by UID. A rewrite within Dovecot's line
// answers as directly; one past it is BAD [LIMIT] from idlemux, never
// Dovecot's "line too large" about a UID SEARCH the client did not send.
func TestDovecotSearchLargeUIDs(t *testing.T) {
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	appendMsg(t, direct, "INBOX", testMessage("first"))
	if out, err := dv.Doveadm("mailbox", "update", "-u", testUser, "--min-next-uid", "4000000000", "INBOX"); err != nil {
		t.Fatalf("doveadm: %v %s", err, out)
	}
	for i := range 9 {
		appendMsg(t, direct, "INBOX", testMessage(fmt.Sprint("big ", i)))
	}
	sp := dialSearchPair(t, dv.Addr)
	keys := func(n int) string { return strings.TrimSpace(strings.Repeat("2,4,6,8,10 ", n)) }
	tests := []struct {
		name, args      string
		direct, through string
	}{
		{"500 keys: 6 KiB sent, 33 KiB by UID", keys(500), "OK", "OK"},
		{"2,000 keys: 22 KiB sent, 130 KiB by UID", keys(2000), "OK", "BAD [LIMIT]"},
	}
	for i, tt := range tests {
		for _, cmd := range []string{"SEARCH ", "UID SEARCH "} {
			direct, via := sp.both(t, fmt.Sprintf("u%d", i), cmd+tt.args)
			if got := status(direct); got != tt.direct {
				t.Errorf("%s: %sdirectly %q, want %s", tt.name, cmd, direct[len(direct)-1], tt.direct)
			}
			if got := status(via); got != tt.through {
				t.Errorf("%s: %sthrough idlemux %q, want %s", tt.name, cmd, via[len(via)-1], tt.through)
			}
			if tt.through == "OK" && strings.Join(via[:len(via)-1], "\n") != strings.Join(direct[:len(direct)-1], "\n") {
				t.Errorf("%s: %sthrough idlemux %q, directly %q", tt.name, cmd, via[:len(via)-1], direct[:len(direct)-1])
			}
		}
	}
}
