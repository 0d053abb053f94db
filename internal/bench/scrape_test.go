package bench

import (
	"encoding/json"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestFanoutSince(t *testing.T) {
	inf := math.Inf(1)
	sample := func(sum, count float64, ns ...float64) metricsSample {
		les := []float64{.01, .05, .1, inf}
		s := metricsSample{ok: true, sum: sum, count: count}
		for i, n := range ns {
			s.buckets = append(s.buckets, bucket{les[i], n})
		}
		return s
	}
	before := sample(10, 100, 100, 100, 100, 100) // earlier runs: all fast
	for _, tt := range []struct {
		name     string
		after    metricsSample
		mean, at float64
		over     bool
	}{
		{"this run's own p99, not the lifetime's", sample(10+100*0.07, 200, 100, 100, 200, 200), 0.07, .1, false},
		{"p99 past the last finite bucket", sample(10+100*7, 200, 100, 100, 100, 200), 7, .1, true},
		{"nothing new", sample(10, 100, 100, 100, 100, 100), 0, 0, false},
	} {
		mean, at, over := tt.after.fanoutSince(before)
		if math.Abs(mean-tt.mean) > 1e-9 || at != tt.at || over != tt.over {
			t.Errorf("%s: got mean %v, p99 at most %v, over %v; want %v, %v, %v", tt.name, mean, at, over, tt.mean, tt.at, tt.over)
		}
		r := Result{FanoutLatencyMeanSeconds: mean, FanoutLatencyP99AtMost: at, FanoutLatencyP99Over: over}
		if _, err := json.Marshal(r); err != nil {
			t.Errorf("%s: the result does not encode as JSON: %v", tt.name, err)
		}
	}
}

// TestCommandsSince: a run's upstream commands are the difference of the
// two samples, by name, names without any left out.
func TestCommandsSince(t *testing.T) {
	before := metricsSample{ok: true, commands: map[string]float64{"LOGIN": 2, "NOOP": 5}}
	after := metricsSample{ok: true, commands: map[string]float64{"LOGIN": 3, "NOOP": 5, "UID FETCH": 4}}
	got := after.commandsSince(before)
	want := map[string]float64{"LOGIN": 1, "UID FETCH": 4}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestScrapeSumsUpstreams: the series idlemux labels by upstream (issue 13)
// are summed over upstreams, and a command name with a space ("UID FETCH")
// is read whole.
func TestScrapeSumsUpstreams(t *testing.T) {
	const body = `# HELP idlemux_upstream_commands_total Commands sent.
idlemux_upstream_commands_total{command="UID FETCH",upstream="a"} 4
idlemux_upstream_commands_total{command="UID FETCH",upstream="b"} 3
idlemux_upstream_commands_total{command="LOGIN",upstream="a"} 2
idlemux_upstream_connections{role="watcher",upstream="a"} 1
idlemux_upstream_connections{role="command",upstream="b"} 2
idlemux_upstream_logins_total{reason="check",upstream="a"} 5
idlemux_upstream_logins_total{reason="check",upstream="b"} 1
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }))
	defer srv.Close()
	got := scrape(srv.URL)
	if !got.ok {
		t.Fatal("scrape: got no sample, want one")
	}
	if want := map[string]float64{"UID FETCH": 7, "LOGIN": 2}; !maps.Equal(got.commands, want) {
		t.Errorf("commands: got %v, want %v", got.commands, want)
	}
	if got.upstreamConns != 3 || got.logins != 6 {
		t.Errorf("connections, logins: got %v, %v; want 3, 6", got.upstreamConns, got.logins)
	}
}
