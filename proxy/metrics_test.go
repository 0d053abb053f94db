package proxy

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func scrape(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue returns the value of the series named exactly series in a
// /metrics body, or -1 when it is not there.
func metricValue(body, series string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestMetricsAfterKnownTraffic: /metrics reports what happened: one failed
// login, two selected sessions sharing one watcher connection, the fan-out
// of one new message; /healthz and /readyz answer.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	up := startMemUpstream(t)
	direct := directClient(t, up.addr)
	appendMsg(t, direct, "INBOX", testMessage("one"))
	cfg := testConfig(up.addr)
	cfg.Metrics.Address = "127.0.0.1:0"
	p := startProxy(t, cfg)
	base := "http://" + p.MetricsAddr()

	bad := dialView(t, p.Addrs()[0], "bad")
	if err := bad.c.Login(testUser, "wrong").Wait(); err == nil {
		t.Fatal("wrong password accepted")
	}
	var clients []*viewClient
	for _, name := range []string{"a", "b"} {
		vc := dialView(t, p.Addrs()[0], name)
		vc.login()
		vc.selectBox("INBOX")
		clients = append(clients, vc)
	}
	for _, vc := range clients {
		vc.idle() // delivered while idling: that is what the latency measures
	}
	appendMsg(t, direct, "INBOX", testMessage("two"))
	for _, vc := range clients {
		vc.waitFor("EXISTS 2", waitLong, func() bool { return len(vc.uids) == 2 })
	}
	time.Sleep(50 * time.Millisecond)

	code, body := scrape(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: status %d", code)
	}
	for _, want := range []string{
		`idlemux_auth_failures_total{upstream="default"} 1`,
		`idlemux_downstream_sessions{state="selected"} 2`,
		`idlemux_downstream_sessions{state="unauthenticated"} 1`,
		`idlemux_mailboxes_watched{upstream="default"} 1`,
		`idlemux_upstream_connections{role="watcher",upstream="default"} 1`,
		`idlemux_upstream_connections{role="notify",upstream="default"} 0`, // the upstream offers no NOTIFY
		`idlemux_mailboxes_by_mode{mode="idle",upstream="default"} 1`,
		`idlemux_mailboxes_by_mode{mode="notify",upstream="default"} 0`,
		`idlemux_mailboxes_by_mode{mode="polled",upstream="default"} 0`,
		// Two EXISTS, and the RECENT of the one session first told.
		"idlemux_fanout_events_total 3",
		"idlemux_fanout_latency_seconds_count 2",
		`idlemux_upstream_reconnects_total{upstream="default"} 0`,
		"idlemux_clients_closed_lagging_total 0",
		// What the upstream itself counted, but for the test's own direct
		// client: the wrong password and the first good one (checks; the
		// good one's connection then serves commands) and the watcher's;
		// the second client's login was answered from the verified cache.
		`idlemux_upstream_logins_total{reason="check",upstream="default"} 2`,
		`idlemux_upstream_logins_total{reason="watcher",upstream="default"} 1`,
		`idlemux_upstream_logins_total{reason="command",upstream="default"} 0`,
		`idlemux_upstream_logins_total{reason="reconnect",upstream="default"} 0`,
		`idlemux_upstream_logins_total{reason="notify",upstream="default"} 0`,
		"idlemux_fetch_cache_hits_total 0",
		"idlemux_fetch_cache_misses_total 0",
		"idlemux_fetch_cache_evictions_total 0",
		"idlemux_fetch_cache_bytes 0",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if got := up.logins.Load() - 1; got != 3 {
		t.Errorf("logins the upstream counted (but the test's own): got %d, want 3", got)
	}
	// Commands by name, checked against what the upstream itself counted.
	for _, c := range []struct {
		name string
		want int64
	}{{"LOGIN", up.logins.Load() - 1}, {"IDLE", up.idles.Load()}} {
		if got := metricValue(body, `idlemux_upstream_commands_total{command="`+c.name+`",upstream="default"}`); got != float64(c.want) {
			t.Errorf("idlemux_upstream_commands_total{command=%q}: got %v, want %d (the upstream's count)", c.name, got, c.want)
		}
	}
	if got := max(0, metricValue(body, `idlemux_upstream_commands_total{command="SELECT",upstream="default"}`)) +
		max(0, metricValue(body, `idlemux_upstream_commands_total{command="EXAMINE",upstream="default"}`)); got < 1 {
		t.Errorf("upstream SELECT and EXAMINE: got %v, want at least the watcher's", got)
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _ := scrape(t, base+path); code != 200 {
			t.Errorf("%s: got status %d, want 200", path, code)
		}
	}
}
