package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// DefaultUpstreamName names the upstream of the single upstream: form.
const DefaultUpstreamName = "default"

// Routes returns every upstream logins may be routed to, in config order,
// and the name of the one taking logins whose domain none lists ("" when
// such logins are refused). The single upstream: form is one upstream,
// "default", taking every login.
func (c *Config) Routes() (ups []Upstream, def string) {
	if len(c.Upstreams) == 0 {
		u := c.Upstream
		if u.Name == "" {
			u.Name = DefaultUpstreamName
		}
		return []Upstream{u}, u.Name
	}
	return c.Upstreams, c.DefaultUpstream
}

// Route names the upstream of a login: the map-mode entry's upstream when
// set, else the one listing the login's domain (the part after the last
// "@", compared in lower case as DNS names are, RFC 4343), else the
// default. ok is false when none applies.
func (c *Config) Route(login, mapped string) (name string, ok bool) {
	if mapped != "" {
		return mapped, true
	}
	ups, def := c.Routes()
	if d := LoginDomain(login); d != "" {
		for _, u := range ups {
			if slices.Contains(u.Domains, d) {
				return u.Name, true
			}
		}
	}
	return def, def != ""
}

// LoginDomain is the lower-cased part of login after its last "@", or ""
// when it has none.
func LoginDomain(login string) string {
	i := strings.LastIndexByte(login, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(login[i+1:])
}

// upstreamNameRE keeps names usable as log fields and metric labels.
var upstreamNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// domainRE accepts a DNS name: dot-separated labels of letters, digits
// and hyphens (RFC 1035 2.3.1), lower-cased before the check.
var domainRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

// validateRoutes checks upstream/upstreams/default_upstream: exactly one
// of the two forms, unique names, each domain routed to one upstream only,
// and every upstream reachable by some route.
func validateRoutes(raw *rawConfig, c *Config, ps *problems) {
	if raw.Upstreams == nil {
		validateUpstream("upstream", raw.Upstream, &c.Upstream, ps)
		if raw.DefaultUpstream != nil {
			ps.add("default_upstream", "only used with upstreams")
		}
		return
	}
	if raw.Upstream != nil {
		ps.add("upstreams", "set either upstream (one upstream) or upstreams (several), not both")
	}
	list := *raw.Upstreams
	if len(list) == 0 {
		ps.add("upstreams", "must list at least one upstream")
		return
	}
	names := map[string]int{}
	domains := map[string]string{}
	for i, ru := range list {
		prefix := fmt.Sprintf("upstreams[%d]", i)
		u := c.Upstream // the defaults
		u.Name = str(ru.Name)
		switch j, dup := names[u.Name]; {
		case u.Name == "":
			ps.add(prefix+".name", "required")
		case !upstreamNameRE.MatchString(u.Name):
			ps.add(prefix+".name", "must be 1-32 of a-z, 0-9, _ and -, starting with a letter or digit, got %q", u.Name)
		case dup:
			ps.add(prefix+".name", "duplicate of upstreams[%d].name %q", j, u.Name)
		default:
			names[u.Name] = i
		}
		u.Domains = routeDomains(prefix, ru.Domains, domains, ps)
		validateUpstream(prefix, &ru.rawUpstream, &u, ps)
		c.Upstreams = append(c.Upstreams, u)
	}
	if raw.DefaultUpstream != nil {
		c.DefaultUpstream = *raw.DefaultUpstream
		if _, ok := names[c.DefaultUpstream]; !ok {
			ps.add("default_upstream", "unknown upstream %q; upstreams are %s", c.DefaultUpstream, nameList(c.Upstreams))
		}
	}
}

// routeDomains canonicalises one upstream's domains, recording each in
// seen (domain to key) so a domain routed twice is caught.
func routeDomains(prefix string, list []string, seen map[string]string, ps *problems) []string {
	var out []string
	for j, d := range list {
		key := fmt.Sprintf("%s.domains[%d]", prefix, j)
		d = strings.ToLower(strings.TrimSpace(d))
		switch first, dup := seen[d]; {
		case !domainRE.MatchString(d):
			ps.add(key, "must be a domain such as \"example.com\" (no \"@\", no wildcard), got %q", list[j])
		case dup:
			ps.add(key, "duplicate of %s %q: a domain routes to one upstream", first, d)
		default:
			seen[d] = key
			out = append(out, d)
		}
	}
	return out
}

// validateUserRoutes checks auth.users[].upstream against the upstream
// names, then that every upstream is reachable: listed domains, the
// default, or a map-mode user naming it.
func validateUserRoutes(c *Config, ps *problems) {
	ups, def := c.Routes()
	known := map[string]bool{}
	for _, u := range ups {
		known[u.Name] = len(u.Domains) > 0 || u.Name == def
	}
	for i, mu := range c.Auth.Users { // same order as auth.users
		if mu.Upstream == "" {
			continue
		}
		if _, ok := known[mu.Upstream]; !ok {
			ps.add(fmt.Sprintf("auth.users[%d].upstream", i), "unknown upstream %q; upstreams are %s", mu.Upstream, nameList(ups))
			continue
		}
		known[mu.Upstream] = true
	}
	for i, u := range c.Upstreams {
		if u.Name != "" && !known[u.Name] {
			ps.add(fmt.Sprintf("upstreams[%d]", i), "upstream %q gets no logins: give it domains, make it default_upstream, or name it in auth.users[].upstream", u.Name)
		}
	}
}

func nameList(ups []Upstream) string {
	var names []string
	for _, u := range ups {
		names = append(names, fmt.Sprintf("%q", u.Name))
	}
	return strings.Join(names, ", ")
}
