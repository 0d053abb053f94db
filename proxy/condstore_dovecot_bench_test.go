package proxy

import (
	"fmt"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

// BenchmarkCondstoreResync: a CONDSTORE client's resynchronisation of a
// 2,000-message INBOX in which 20 messages changed since its last
// HIGHESTMODSEQ (RFC 7162 3.1.4.1, UID FETCH 1:* (FLAGS) (CHANGEDSINCE
// m)), and its full listing (UID FETCH 1:* (FLAGS MODSEQ)), against real
// Dovecot directly and through idlemux, where the model answers both
// (the watcher idling). Each iteration checks the count of messages
// answered; through idlemux every FETCH must be answered locally.
func BenchmarkCondstoreResync(b *testing.B) {
	const n, changed = 2000, 20
	dv := dovecottest.Start(b, dovecottest.Options{
		Users:     map[string]string{testUser: testPass},
		ExtraConf: "mail_fsync = never",
	})
	setup := dv.Dial(b, testUser, testPass)
	for i := range n {
		appendMsg(b, setup, "INBOX", testMessage(fmt.Sprint("m", i)))
	}
	sel, err := setup.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		b.Fatal(err)
	}
	since := sel.HighestModSeq
	for i := range changed {
		uid := imap.UID(1 + i*n/changed)
		if err := setup.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
			b.Fatal(err)
		}
	}
	p := startProxyLogging(b, testConfig(dv.Addr), zap.NewNop())
	proxied := selectedClient(b, p.Addrs()[0], n)
	idleUntilWatcherIdles(b, proxied, p, "INBOX")
	clients := []struct {
		name string
		c    *imapclient.Client
		p    *Server
	}{{"direct", selectedClient(b, dv.Addr, n), nil}, {"idlemux", proxied, p}}
	shapes := []struct {
		name string
		opts *imap.FetchOptions
		want int
	}{
		{"changedsince", &imap.FetchOptions{UID: true, Flags: true, ChangedSince: since}, changed},
		{"listing", &imap.FetchOptions{UID: true, Flags: true, ModSeq: true}, n},
	}
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			for _, cl := range clients {
				b.Run(cl.name, func(b *testing.B) {
					cpu, local := processCPU(), localFetches(cl.p)
					for b.Loop() {
						msgs, err := cl.c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, sh.opts).Collect()
						if err != nil || len(msgs) != sh.want || msgs[0].ModSeq == 0 {
							b.Fatalf("got %d messages (err %v), want %d with MODSEQ", len(msgs), err, sh.want)
						}
					}
					reportFetch(b, sh.want, cpu)
					if got := localFetches(cl.p) - local; cl.p != nil && got != float64(b.N) {
						b.Fatalf("got %v FETCHes answered locally, want %d", got, b.N)
					}
				})
			}
		})
	}
}
