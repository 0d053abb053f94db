package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/idlemux/idlemux/config"
)

// takeExplain removes --explain (or -explain) from args: check-config's
// one flag besides --config, which the shared configFlag does not know.
func takeExplain(args []string) ([]string, bool) {
	out := slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "--explain" || a == "-explain" })
	return out, len(out) != len(args)
}

// explainUpstreams prints the effective settings of every upstream,
// presets and defaults applied, and where logins go: what the operator
// gets, not what the file says.
func explainUpstreams(w io.Writer, cfg *config.Config) {
	ups, def := cfg.Routes()
	for _, u := range ups {
		fmt.Fprintf(w, "upstream %s", u.Name)
		if u.Preset != "" {
			fmt.Fprintf(w, " (preset %s)", u.Preset)
		}
		fmt.Fprintln(w, ":")
		domains := "(none)"
		if len(u.Domains) > 0 {
			domains = strings.Join(u.Domains, ", ")
		}
		for _, kv := range [][2]string{
			{"address", u.Address},
			{"tls", string(u.TLS)},
			{"server_name", u.ServerName},
			{"domains", domains},
			{"idle_refresh", u.IdleRefresh.String()},
			{"max_connections_per_account", fmt.Sprint(u.MaxConnectionsPerAccount)},
			{"max_writes_per_mailbox", fmt.Sprint(u.MaxWritesPerMailbox)},
			{"response_timeout", u.ResponseTimeout.String()},
			{"dial_timeout", u.DialTimeout.String()},
			{"poll_interval", u.PollInterval.String()},
			{"oauth2_mechanism", u.OAuth2Mechanism},
		} {
			fmt.Fprintf(w, "  %s: %s\n", kv[0], kv[1])
		}
	}
	if def == "" {
		def = "(none: logins of other domains are refused)"
	}
	fmt.Fprintf(w, "default_upstream: %s\n", def)
	explainTokenUsers(w, cfg)
}

// explainTokenUsers prints, for each map-mode user whose upstream login
// uses an OAuth2 token, where its logins go and the mechanism the token
// is sent with: its own oauth2_mechanism, else its upstream's (a preset's
// included), which the file alone does not show.
func explainTokenUsers(w io.Writer, cfg *config.Config) {
	for _, u := range cfg.Auth.Users {
		if u.OAuth2TokenFile == "" {
			continue
		}
		up, ok := cfg.Route(u.User, u.Upstream)
		if !ok {
			up = "(none)"
		}
		fmt.Fprintf(w, "user %s: upstream %s, oauth2_mechanism %s\n", u.User, up, u.OAuth2Mechanism)
	}
}
