package bench

import (
	"bufio"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// metricsSample is what the bench reads from idlemux's /metrics. Counters
// and the histogram are cumulative over idlemux's life, so a run reports
// the difference between two samples: what this run caused.
type metricsSample struct {
	ok            bool
	upstreamConns float64            // idlemux_upstream_connections, all roles
	logins        float64            // idlemux_upstream_logins_total
	commands      map[string]float64 // idlemux_upstream_commands_total, by command, all upstreams
	sum, count    float64            // idlemux_fanout_latency_seconds
	buckets       []bucket
}

type bucket struct{ le, n float64 }

// scrape reads one sample; ok is false when /metrics could not be read.
func scrape(url string) metricsSample {
	var s metricsSample
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return s
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s
	}
	s.ok = true
	const bucketPrefix = `idlemux_fanout_latency_seconds_bucket{le="`
	const commandPrefix = `idlemux_upstream_commands_total{command="`
	s.commands = map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		// The value follows the last space: a label value may hold spaces
		// ("UID FETCH").
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		f := [2]string{line[:i], line[i+1:]}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(f[0], "idlemux_upstream_connections{"):
			s.upstreamConns += v
		case strings.HasPrefix(f[0], "idlemux_upstream_logins_total{"):
			s.logins += v
		case f[0] == "idlemux_fanout_latency_seconds_sum":
			s.sum = v
		case f[0] == "idlemux_fanout_latency_seconds_count":
			s.count = v
		case strings.HasPrefix(f[0], commandPrefix):
			// {command="NAME",upstream="..."}: summed over upstreams.
			name, _, _ := strings.Cut(strings.TrimPrefix(f[0], commandPrefix), `"`)
			s.commands[name] += v
		case strings.HasPrefix(f[0], bucketPrefix):
			le, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(f[0], bucketPrefix), `"}`), 64)
			if err == nil {
				s.buckets = append(s.buckets, bucket{le, v})
			}
		}
	}
	if sc.Err() != nil {
		return metricsSample{} // a cut-off body is no sample
	}
	return s
}

// commandsSince returns the upstream commands sent between before and s,
// by name, leaving out names with none.
func (s metricsSample) commandsSince(before metricsSample) map[string]float64 {
	out := map[string]float64{}
	for name, n := range s.commands {
		if d := n - before.commands[name]; d > 0 {
			out[name] = d
		}
	}
	return out
}

// fanoutSince returns the mean fan-out latency of the writes made between
// before and s, and the upper bound of the histogram bucket holding their
// 99th percentile. When that bucket is the last (+Inf), it returns the
// largest finite bound with over set: p99 is above it (and JSON has no
// infinity).
func (s metricsSample) fanoutSince(before metricsSample) (mean, p99AtMost float64, over bool) {
	count := s.count - before.count
	if count <= 0 {
		return 0, 0, false
	}
	mean = (s.sum - before.sum) / count
	prev := map[float64]float64{}
	for _, b := range before.buckets {
		prev[b.le] = b.n
	}
	finite := 0.0
	for _, b := range s.buckets { // cumulative, ascending
		if math.IsInf(b.le, 1) {
			break
		}
		if b.n-prev[b.le] >= 0.99*count {
			return mean, b.le, false
		}
		finite = b.le
	}
	return mean, finite, true
}
