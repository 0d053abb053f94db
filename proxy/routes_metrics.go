package proxy

import "github.com/prometheus/client_golang/prometheus"

// routeCollector reports idlemux_upstream_accounts{upstream}: with
// several upstreams (issue 13) the other upstream series are sums, and
// this one shows how the accounts spread over them.
type routeCollector struct{ s *Server }

var routeAccountsDesc = prometheus.NewDesc("idlemux_upstream_accounts",
	"Upstream accounts held (logged in, with pools and watchers), by upstream name (\"default\" for the single upstream: form).",
	[]string{"upstream"}, nil)

func (c *routeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- routeAccountsDesc }
func (c *routeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.s.rt().routes {
		ch <- prometheus.MustNewConstMetric(routeAccountsDesc, prometheus.GaugeValue, float64(r.mgr.Stats().Accounts), r.cfg.Name)
	}
}
