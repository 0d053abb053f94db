package proxy

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/idlemux/idlemux/internal/memidle"
)

// slowStatusSession counts the STATUS commands the upstream serves and
// takes delay over each, so concurrent requests through idlemux overlap.
type slowStatusSession struct {
	*memidle.Session
	statuses *atomic.Int64
	delay    time.Duration
}

func (s slowStatusSession) Status(mailbox string, options *imap.StatusOptions) (*imap.StatusData, error) {
	s.statuses.Add(1)
	time.Sleep(s.delay)
	return s.Session.Status(mailbox, options)
}

// startSlowStatusUpstream is an imapmemserver upstream with an Archive
// mailbox whose STATUS takes delay; it returns the address and the count
// of STATUS commands served.
func startSlowStatusUpstream(t *testing.T, delay time.Duration) (string, *atomic.Int64) {
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(testUser, testPass)
	for _, box := range []string{"INBOX", "Archive"} {
		if err := u.Create(box, nil); err != nil {
			t.Fatal(err)
		}
	}
	mem.AddUser(u)
	statuses := new(atomic.Int64)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return slowStatusSession{memidle.Wrap(mem.NewSession()), statuses, delay}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapLiteralPlus: {}},
		InsecureAuth: true,
		Logger:       testLogger{t},
	})
	return serveLoopback(t, srv), statuses
}

// TestStatusSharedInFlight: identical STATUS requests of a mailbox no
// watcher has, in flight together, share one upstream command and get
// the same answer; a STATUS that starts after an APPEND through idlemux
// completed does not join one that started before it (read-your-writes),
// and sees the new message.
func TestStatusSharedInFlight(t *testing.T) {
	addr, statuses := startSlowStatusUpstream(t, 300*time.Millisecond)
	p := startProxy(t, testConfig(addr))
	const n = 8
	clients := make([]*rawConn, n)
	for i := range clients {
		clients[i] = dialRaw(t, p.Addrs()[0])
		clients[i].cmd("l", "LOGIN "+testUser+" "+testPass)
	}
	answers := make([][]string, n)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(c.c, "s STATUS Archive (MESSAGES UNSEEN)\r\n")
			answers[i] = c.answer("s")
		}()
	}
	wg.Wait()
	if got := statuses.Load(); got != 1 {
		t.Errorf("%d identical STATUS in flight: got %d upstream STATUS commands, want 1", n, got)
	}
	for i, a := range answers {
		if got, want := strings.Join(a, "|"), `* STATUS "Archive" (MESSAGES 0 UNSEEN 0)|s OK STATUS completed`; got != want {
			t.Errorf("client %d: got %q, want %q", i, got, want)
		}
	}

	// One STATUS in flight; an APPEND through idlemux completes meanwhile;
	// a STATUS sent after it must not share the first one's answer.
	statuses.Store(0)
	first := make(chan []string, 1)
	go func() {
		fmt.Fprintf(clients[1].c, "f STATUS Archive (MESSAGES)\r\n")
		first <- clients[1].answer("f")
	}()
	time.Sleep(50 * time.Millisecond) // the first STATUS is upstream now
	msg := testMessage("shared")
	rawAppend(t, clients[0], "a", "Archive", "", msg)
	after := clients[2].cmd("g", "STATUS Archive (MESSAGES)")
	<-first
	if got, want := strings.Join(after, "|"), `* STATUS "Archive" (MESSAGES 1)|g OK STATUS completed`; got != want {
		t.Errorf("STATUS after the APPEND: got %q, want %q", got, want)
	}
	if got := statuses.Load(); got != 2 {
		t.Errorf("STATUS before and after an APPEND: got %d upstream STATUS commands, want 2", got)
	}
}
