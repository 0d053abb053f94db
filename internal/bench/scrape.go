package bench

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// scrape reads idlemux's upstream connections and mean fan-out latency
// from its /metrics.
func scrape(url string) (upstreamConns, fanoutMean, fanoutP99 float64) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, 0, 0
	}
	defer resp.Body.Close()
	var sum, count float64
	type bucket struct{ le, n float64 }
	var buckets []bucket
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(f[0], "idlemux_upstream_connections{"):
			upstreamConns += v
		case f[0] == "idlemux_fanout_latency_seconds_sum":
			sum = v
		case f[0] == "idlemux_fanout_latency_seconds_count":
			count = v
		case strings.HasPrefix(f[0], `idlemux_fanout_latency_seconds_bucket{le="`):
			le, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(f[0], `idlemux_fanout_latency_seconds_bucket{le="`), `"}`), 64)
			if err == nil {
				buckets = append(buckets, bucket{le, v})
			}
		}
	}
	if count > 0 {
		fanoutMean = sum / count
		for _, b := range buckets { // cumulative, ascending: the bucket holding p99
			if b.n >= 0.99*count {
				fanoutP99 = b.le
				break
			}
		}
	}
	return upstreamConns, fanoutMean, fanoutP99
}
