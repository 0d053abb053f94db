package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

const multipartMsg = "From: Bob <bob@example.org>\r\n" +
	"To: Alice <alice@example.org>, carol@example.org\r\n" +
	"Subject: =?UTF-8?Q?caf=C3=A9?= report\r\n" +
	"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n" +
	"Message-ID: <multi@example.org>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"XX\"\r\n" +
	"\r\n" +
	"--XX\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"caf=C3=A9 au lait\r\n" +
	"--XX\r\n" +
	"Content-Type: application/octet-stream; name=\"a.bin\"\r\n" +
	"Content-Disposition: attachment; filename=\"a.bin\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"AAECAwQFBgc=\r\n" +
	"--XX--\r\n"

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func stripRecent(f []imap.Flag) []imap.Flag {
	out := slices.DeleteFunc(slices.Clone(f), func(x imap.Flag) bool { return x == "\\Recent" })
	if len(out) == 0 {
		return nil // "FLAGS ()" parses as empty or nil: the same on the wire
	}
	return out
}

// TestDovecotFetchItemsMatchDirect: every FETCH item through the proxy
// equals what Dovecot answers directly.
func TestDovecotFetchItemsMatchDirect(t *testing.T) {
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	appendMsg(t, direct, "INBOX", testMessage("plain"))
	uid := appendMsg(t, direct, "INBOX", multipartMsg, imap.FlagFlagged)
	p := startProxy(t, testConfig(dv.Addr))
	vc := dialView(t, p.Addrs()[0], "fetcher")
	vc.login()
	if _, err := vc.c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	opts := func() *imap.FetchOptions {
		return &imap.FetchOptions{
			UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
			BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
			BodySection: []*imap.FetchItemBodySection{
				{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "From"}, Peek: true},
				{Part: []int{1}, Peek: true},
				{Part: []int{2}, Specifier: imap.PartSpecifierMIME, Peek: true},
				{Peek: true, Partial: &imap.SectionPartial{Offset: 10, Size: 20}},
				{Specifier: imap.PartSpecifierText, Peek: true},
			},
			BinarySection:     []*imap.FetchItemBinarySection{{Part: []int{2}, Peek: true}},
			BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{1}}},
		}
	}
	tests := []struct {
		name string
		set  imap.NumSet
	}{
		{"by sequence number", imap.SeqSetNum(1, 2)},
		{"by UID", imap.UIDSetNum(uid)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vc.c.Fetch(tt.set, opts()).Collect()
			if err != nil {
				t.Fatalf("through the proxy: %v", err)
			}
			want, err := direct.Fetch(tt.set, opts()).Collect()
			if err != nil {
				t.Fatalf("direct: %v", err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d messages, want %d", len(got), len(want))
			}
			for i := range got {
				got[i].Flags, want[i].Flags = stripRecent(got[i].Flags), stripRecent(want[i].Flags)
				// Header field names are case-insensitive (RFC 3501 6.4.5):
				// Dovecot echoes them in capitals, the proxy as the client
				// wrote them.
				for _, b := range append(got[i].BodySection, want[i].BodySection...) {
					for j, f := range b.Section.HeaderFields {
						b.Section.HeaderFields[j] = strings.ToUpper(f)
					}
				}
				g, w := reflect.ValueOf(*got[i]), reflect.ValueOf(*want[i])
				for f := 0; f < g.NumField(); f++ {
					if !reflect.DeepEqual(g.Field(f).Interface(), w.Field(f).Interface()) {
						t.Errorf("message %d, %s:\n got %s\nwant %s", i, g.Type().Field(f).Name, dump(g.Field(f).Interface()), dump(w.Field(f).Interface()))
					}
				}
			}
		})
	}
	// Under EXAMINE, a non-PEEK body fetch must not set \Seen upstream.
	if _, err := vc.c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	msgs, err := direct.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Fatalf("BODY[] under EXAMINE set \\Seen upstream: %+v, %v", msgs, err)
	}
	// Obsolete RFC822.* names come back under their own names.
	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("a", "LOGIN "+testUser+" "+testPass)
	rc.cmd("b", "EXAMINE INBOX")
	lines := rc.cmd("c", "FETCH 1 (RFC822.SIZE RFC822.HEADER)")
	if !strings.Contains(lines[0], "RFC822.HEADER {") || !strings.Contains(lines[0], "RFC822.SIZE ") {
		t.Fatalf("obsolete FETCH items: got %q", lines[0])
	}
}

// TestDovecotMailboxCommands runs the authenticated- and selected-state
// commands through the proxy and checks the answers and their effect.
func TestDovecotMailboxCommands(t *testing.T) {
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	for _, s := range []string{"one", "two", "three", "four"} {
		appendMsg(t, direct, "INBOX", testMessage(s))
	}
	p := startProxy(t, testConfig(dv.Addr))
	vc := dialView(t, p.Addrs()[0], "client")
	vc.login()
	c := vc.c
	caps, err := c.Capability().Wait()
	if err != nil || !caps.Has(imap.CapMove) || !caps.Has(imap.CapUIDPlus) || !caps.Has(imap.CapSpecialUse) {
		t.Fatalf("CAPABILITY after login: got %v, %v; want MOVE, UIDPLUS, SPECIAL-USE", caps, err)
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	var list []*imap.ListData
	list, err = c.List("", "*", nil).Collect()
	must("LIST", err)
	var sent *imap.ListData
	for _, l := range list {
		if l.Mailbox == "Sent" {
			sent = l
		}
	}
	if sent == nil || !slices.Contains(sent.Attrs, imap.MailboxAttrSent) {
		t.Fatalf("LIST: Sent with \\Sent not found in %+v", list)
	}
	must("CREATE", c.Create("Work", nil).Wait())
	must("SUBSCRIBE", c.Subscribe("Work").Wait())
	subs, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	must("LIST (SUBSCRIBED)", err)
	if !slices.ContainsFunc(subs, func(l *imap.ListData) bool { return l.Mailbox == "Work" }) {
		t.Fatalf("subscribed list lacks Work: %+v", subs)
	}
	must("RENAME", c.Rename("Work", "Work2", nil).Wait())
	st, err := c.Status("Work2", &imap.StatusOptions{NumMessages: true, UIDNext: true, NumUnseen: true}).Wait()
	must("STATUS", err)
	if st.NumMessages == nil || *st.NumMessages != 0 || st.UIDNext == 0 {
		t.Fatalf("STATUS Work2: got %+v", st)
	}
	must("UNSUBSCRIBE", c.Unsubscribe("Work2").Wait())
	must("DELETE", c.Delete("Work2").Wait())
	var ie *imap.Error
	if err := c.Delete("Work2").Wait(); !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo {
		t.Fatalf("DELETE of a missing mailbox: got %v, want the upstream's NO", err)
	}
	ns, err := c.Namespace().Wait()
	must("NAMESPACE", err)
	if len(ns.Personal) != 1 {
		t.Fatalf("NAMESPACE: got %+v", ns)
	}
	if _, err := c.Select("NoSuchBox", nil).Wait(); !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo {
		t.Fatalf("SELECT of a missing mailbox: got %v, want NO", err)
	}

	vc.selectBox("INBOX")
	must("CREATE Archive", c.Create("Archive", nil).Wait())
	cd, err := c.Copy(imap.SeqSetNum(1), "Archive").Wait()
	must("COPY", err)
	if cd == nil || len(cd.DestUIDs) == 0 {
		t.Fatalf("COPY: no COPYUID: %+v", cd)
	}
	second := vc.uids[1]
	md, err := c.Move(imap.SeqSetNum(2), "Archive").Wait()
	must("MOVE", err)
	if md == nil || md.UIDValidity == 0 {
		t.Fatalf("MOVE: no COPYUID: %+v", md)
	}
	vc.waitFor("EXPUNGE 2 after MOVE", waitLong, func() bool { return len(vc.uids) == 3 && !slices.Contains(vc.uids, second) })

	data, err := c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "four"}}}, nil).Wait()
	must("SEARCH", err)
	if got := data.AllSeqNums(); !slices.Equal(got, []uint32{3}) {
		t.Fatalf("SEARCH SUBJECT four: got %v, want [3]", got)
	}
	data, err = c.UIDSearch(&imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(1, 3)}}, nil).Wait()
	must("UID SEARCH by sequence set", err)
	if got, want := data.AllUIDs(), []imap.UID{vc.uids[0], vc.uids[2]}; !slices.Equal(got, want) {
		t.Fatalf("UID SEARCH 1,3: got %v, want %v", got, want)
	}
	data, err = c.Search(&imap.SearchCriteria{}, &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true}).Wait()
	must("ESEARCH", err)
	if data.Min != 1 || data.Max != 3 || data.Count != 3 {
		t.Fatalf("SEARCH RETURN (MIN MAX COUNT): got %+v, want 1, 3, 3", data)
	}

	must("STORE \\Deleted", c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close())
	firstUID := vc.uids[0]
	seqs, err := c.UIDExpunge(imap.UIDSetNum(firstUID)).Collect()
	must("UID EXPUNGE", err)
	if !slices.Equal(seqs, []uint32{1}) {
		t.Fatalf("UID EXPUNGE: got %v, want [1]", seqs)
	}
	vc.mu.Lock()
	vc.uids = vc.uids[1:]
	vc.mu.Unlock()
	vc.checkAgainstServer()

	// EXAMINE is read-only: STORE is refused.
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); !errors.As(err, &ie) || ie.Code != "READ-ONLY" {
		t.Fatalf("STORE under EXAMINE: got %v, want NO [READ-ONLY]", err)
	}
}

// TestDovecotStatusRecentAndPanics: STATUS with RECENT (mutt sends it) and
// LIST RETURN (STATUS (... RECENT)) answer with RECENT 0 instead of killing
// the connection, and repeating them never exhausts the account's pool.
func TestDovecotStatusRecentAndPanics(t *testing.T) {
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	appendMsg(t, direct, "INBOX", testMessage("one"))
	p := startProxy(t, testConfig(dv.Addr))
	warm := dialView(t, p.Addrs()[0], "warm") // learn capabilities (LIST-STATUS)
	warm.login()
	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("a", "LOGIN "+testUser+" "+testPass)
	for i := 0; i < 8; i++ { // more than max_connections_per_account
		lines := rc.cmd(fmt.Sprintf("s%d", i), "STATUS INBOX (MESSAGES RECENT UNSEEN)")
		if len(lines) != 2 || !strings.Contains(lines[0], "MESSAGES 1") || !strings.Contains(lines[0], "RECENT 0") || !strings.HasPrefix(lines[1], fmt.Sprintf("s%d OK", i)) {
			t.Fatalf("STATUS with RECENT, round %d: got %q", i, lines)
		}
	}
	if lines := rc.cmd("r", "STATUS INBOX (RECENT)"); len(lines) != 2 || !strings.Contains(lines[0], "RECENT 0") || !strings.HasPrefix(lines[1], "r OK") {
		t.Fatalf("STATUS INBOX (RECENT): got %q, want RECENT 0 and OK", lines)
	}
	lines := rc.cmd("l", `LIST "" "INBOX" RETURN (STATUS (MESSAGES RECENT))`)
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "l OK") || !strings.Contains(strings.Join(lines, "\n"), "RECENT 0") {
		t.Fatalf("LIST RETURN (STATUS (MESSAGES RECENT)): got %q", lines)
	}
	if st := p.Stats(); st.UpstreamConns > 5 {
		t.Fatalf("upstream connections: %d, want at most 5", st.UpstreamConns)
	}
}
