package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestParseLoginLimitKeys: the login limits and the client-address
// forwarding parse onto their fields; a negative count is a keyed problem.
func TestParseLoginLimitKeys(t *testing.T) {
	c := mustParse(t, base+"  forward_client_address: true\nlimits:\n  max_parallel_logins_per_ip: 2\n  max_queued_logins_per_ip: 0\n")
	if !c.Upstream.ForwardClientAddress || c.Limits.MaxParallelLoginsPerIP != 2 || c.Limits.MaxQueuedLoginsPerIP != 0 {
		t.Errorf("got forward %v, parallel %d, queued %d; want true, 2, 0", c.Upstream.ForwardClientAddress, c.Limits.MaxParallelLoginsPerIP, c.Limits.MaxQueuedLoginsPerIP)
	}
	if d := mustParse(t, base); d.Upstream.ForwardClientAddress {
		t.Errorf("upstream.forward_client_address by default: got true, want false")
	}
	_, err := Parse([]byte(base + "limits:\n  max_parallel_logins_per_ip: -1\n"))
	want := []string{"limits.max_parallel_logins_per_ip: must be >= 0 (0: no limit), got -1"}
	if got := problemsOf(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("got problems\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
