package proxy

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/idlemux/idlemux/fanout"
)

// pollWriter is an imapserver session whose Poll writes the next batch of
// updates through imapserver's own UpdateWriter: the reference for what
// clients saw before idlemux wrote its updates itself.
type pollWriter struct {
	imapserver.Session
	next chan []fanout.Update
}

func (s pollWriter) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	var ups []fanout.Update
	select {
	case ups = <-s.next:
	default:
	}
	for _, u := range ups {
		var err error
		switch u.Kind {
		case fanout.UpdateExpunge:
			err = w.WriteExpunge(u.Seq)
		case fanout.UpdateExists:
			err = w.WriteNumMessages(u.Seq)
		case fanout.UpdateRecent:
			err = w.WriteNumRecent(u.Seq)
		case fanout.UpdateFlags:
			err = w.WriteMessageFlags(u.Seq, u.UID, u.Flags)
		case fanout.UpdateMailboxFlags:
			err = w.WriteMailboxFlags(u.Flags)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// viaUpdateWriter returns the untagged bytes imapserver's UpdateWriter
// writes for each batch, one NOOP per batch.
func viaUpdateWriter(t *testing.T, batches [][]fanout.Update) []string {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(testUser, testPass)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	next := make(chan []fanout.Update, 1)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return pollWriter{mem.NewSession(), next}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: true,
		Logger:       testLogger{t},
	})
	c, err := net.Dial("tcp", serveLoopback(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLong))
	r := bufio.NewReader(c)
	untilTag := func(tag string) string {
		var b strings.Builder
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading imapserver's answer: %v", err)
			}
			if strings.HasPrefix(l, tag+" ") {
				if !strings.HasPrefix(l, tag+" OK") {
					t.Fatalf("imapserver: %q", l)
				}
				return b.String()
			}
			b.WriteString(l)
		}
	}
	untilTag("*") // the greeting is "* OK": read it as a tagged line
	fmt.Fprintf(c, "l LOGIN %s %s\r\n", testUser, testPass)
	untilTag("l")
	var out []string
	for i, ups := range batches {
		next <- ups
		tag := fmt.Sprintf("n%d", i)
		fmt.Fprintf(c, "%s NOOP\r\n", tag)
		out = append(out, untilTag(tag))
	}
	return out
}

// TestUnsolicitedEncoderAgrees: idlemux's one encoder of unsolicited
// updates (unsolicited.go) writes, byte for byte, what imapserver's
// UpdateWriter wrote for the same updates before, so clients see no
// change; the PERMANENTFLAGS line after FLAGS is Dovecot's (its own test:
// TestDovecotNewKeywordFlags).
func TestUnsolicitedEncoderAgrees(t *testing.T) {
	keywords := []imap.Flag{imap.FlagSeen, "$Label1", "$Forwarded", imap.FlagDeleted}
	tests := []struct {
		name string
		ups  []fanout.Update
	}{
		{"EXISTS", []fanout.Update{{Kind: fanout.UpdateExists, Seq: 7}}},
		{"EXISTS zero", []fanout.Update{{Kind: fanout.UpdateExists, Seq: 0}}},
		{"EXISTS and RECENT", []fanout.Update{{Kind: fanout.UpdateExists, Seq: 3}, {Kind: fanout.UpdateRecent, Seq: 1}}},
		{"EXPUNGE", []fanout.Update{{Kind: fanout.UpdateExpunge, Seq: 3, UID: 30}}},
		{"EXPUNGEs then EXISTS", []fanout.Update{
			{Kind: fanout.UpdateExpunge, Seq: 9, UID: 90}, {Kind: fanout.UpdateExpunge, Seq: 1, UID: 10},
			{Kind: fanout.UpdateExists, Seq: 4294967295},
		}},
		{"FETCH FLAGS with UID", []fanout.Update{{Kind: fanout.UpdateFlags, Seq: 2, UID: 20, Flags: []imap.Flag{imap.FlagSeen}}}},
		{"FETCH FLAGS without UID", []fanout.Update{{Kind: fanout.UpdateFlags, Seq: 2, Flags: []imap.Flag{imap.FlagSeen}}}},
		{"FETCH no flags", []fanout.Update{{Kind: fanout.UpdateFlags, Seq: 1, UID: 1}}},
		{"FETCH keywords with UID", []fanout.Update{{Kind: fanout.UpdateFlags, Seq: 12, UID: 4000000000, Flags: keywords}}},
		{"FETCH keywords without UID", []fanout.Update{{Kind: fanout.UpdateFlags, Seq: 12, Flags: keywords}}},
		{"mixed batch", []fanout.Update{
			{Kind: fanout.UpdateExpunge, Seq: 5, UID: 50}, {Kind: fanout.UpdateExists, Seq: 6},
			{Kind: fanout.UpdateFlags, Seq: 1, UID: 11, Flags: keywords}, {Kind: fanout.UpdateFlags, Seq: 2, UID: 12},
		}},
	}
	batches := make([][]fanout.Update, len(tests))
	for i, tt := range tests {
		batches[i] = tt.ups
	}
	want := viaUpdateWriter(t, batches)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendUpdates(nil, tt.ups, fixedPerm{}, nil))
			if got != want[i] {
				t.Errorf("got %q, want imapserver's %q", got, want[i])
			}
		})
	}

	// FLAGS: imapserver writes only the FLAGS line; idlemux follows it
	// with PERMANENTFLAGS as Dovecot does.
	flags := []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft, "$Label1"}
	wantFlags := viaUpdateWriter(t, [][]fanout.Update{{{Kind: fanout.UpdateMailboxFlags, Flags: flags}}})[0]
	for _, tt := range []struct {
		name string
		perm []imap.Flag
		want string
	}{
		{"read-write", append(flags[:len(flags):len(flags)], imap.FlagWildcard),
			`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Label1 \*)] Flags permitted.` + "\r\n"},
		{"read-only", nil, "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"},
	} {
		t.Run("FLAGS "+tt.name, func(t *testing.T) {
			got := string(appendUpdates(nil, []fanout.Update{{Kind: fanout.UpdateMailboxFlags, Flags: flags}}, fixedPerm{tt.perm}, nil))
			if want := wantFlags + tt.want; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

type fixedPerm struct{ perm []imap.Flag }

func (p fixedPerm) permanent([]imap.Flag) []imap.Flag { return p.perm }

// TestUnsolicitedSkipsBadFlags: a flag that is no atom never reaches the
// wire, so nothing from upstream can end a line or open a literal.
func TestUnsolicitedSkipsBadFlags(t *testing.T) {
	tests := []struct {
		name  string
		flags []imap.Flag
		want  string
	}{
		{"CRLF", []imap.Flag{"a\r\n* BYE", imap.FlagSeen}, `* 1 FETCH (UID 1 FLAGS (\Seen))` + "\r\n"},
		{"literal", []imap.Flag{"{5}", "$ok"}, "* 1 FETCH (UID 1 FLAGS ($ok))\r\n"},
		{"empty and lone backslash", []imap.Flag{"", `\`, `\\x`}, "* 1 FETCH (UID 1 FLAGS ())\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendUpdates(nil, []fanout.Update{{Kind: fanout.UpdateFlags, Seq: 1, UID: 1, Flags: tt.flags}}, fixedPerm{}, nil))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
