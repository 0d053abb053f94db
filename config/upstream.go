package config

import (
	"fmt"
	"strings"
)

// validateUpstream applies raw onto c, which holds the defaults; prefix
// is the key it sits under ("upstream", "upstreams[1]").
func validateUpstream(prefix string, raw *rawUpstream, c *Upstream, ps *problems) {
	if raw == nil {
		raw = &rawUpstream{}
	}
	k := func(key string) string { return prefix + "." + key }
	addr := str(raw.Address)
	if pa := applyPreset(k("preset"), raw.Preset, c, ps); addr == "" {
		addr = pa
	}
	switch {
	case addr == "":
		ps.add(k("address"), "required")
	default:
		host, err := splitAddress(addr, false)
		if err != nil {
			ps.add(k("address"), "%v", err)
			break
		}
		c.Address = addr
		c.ServerName = host
	}
	c.TLS = tlsMode(ps, k("tls"), raw.TLS, c.TLS)
	if c.CAFile = str(raw.CAFile); c.CAFile != "" {
		checkCAFile(k("ca_file"), c.CAFile, ps)
	}
	if name := str(raw.ServerName); name != "" {
		c.ServerName = name
	}
	if raw.TLSInsecureSkipVerify != nil {
		c.TLSInsecureSkipVerify = *raw.TLSInsecureSkipVerify
	}
	if raw.ForwardClientAddress != nil {
		c.ForwardClientAddress = *raw.ForwardClientAddress
	}
	if n := raw.MaxConnectionsPerAccount; n != nil {
		if int(*n) < MinConnectionsPerAccount {
			ps.add(k("max_connections_per_account"), "must be >= %d, got %d", MinConnectionsPerAccount, *n)
		} else {
			c.MaxConnectionsPerAccount = int(*n)
		}
	}
	if n := raw.MaxWritesPerMailbox; n != nil {
		if *n < 0 {
			ps.add(k("max_writes_per_mailbox"), "must be >= 0 (0: no bound), got %d", *n)
		} else {
			c.MaxWritesPerMailbox = int(*n)
		}
	}
	positive := durationRule{}
	zeroOK := durationRule{allowZero: true}
	c.IdleRefresh = duration(ps, k("idle_refresh"), raw.IdleRefresh, c.IdleRefresh, durationRule{max: maxIdleRefresh})
	c.ResponseTimeout = duration(ps, k("response_timeout"), raw.ResponseTimeout, c.ResponseTimeout, positive)
	c.DialTimeout = duration(ps, k("dial_timeout"), raw.DialTimeout, c.DialTimeout, positive)
	c.CommandLinger = duration(ps, k("command_linger"), raw.CommandLinger, c.CommandLinger, zeroOK)
	c.WatcherLinger = duration(ps, k("watcher_linger"), raw.WatcherLinger, c.WatcherLinger, zeroOK)
	c.PollInterval = duration(ps, k("poll_interval"), raw.PollInterval, c.PollInterval, positive)
	c.OAuth2Mechanism = oneOf(ps, k("oauth2_mechanism"), raw.OAuth2Mechanism, c.OAuth2Mechanism, oauth2Mechanisms...)
	if raw.Capabilities != nil {
		c.Capabilities = capabilities(k("capabilities"), *raw.Capabilities, ps)
	}
}

// capabilities canonicalises an override list: upper case, as go-imap spells
// capabilities, except IMAP4rev1/IMAP4rev2 which it spells in mixed case.
// The list must name a base protocol, since go-imap refuses to serve
// without one.
func capabilities(key string, list []string, ps *problems) []string {
	if len(list) == 0 {
		ps.add(key, "must not be empty; omit it to use the upstream's own list")
		return nil
	}
	out := make([]string, 0, len(list))
	seen := map[string]int{}
	base := false
	for i, raw := range list {
		itemKey := fmt.Sprintf("%s[%d]", key, i)
		c := strings.ToUpper(strings.TrimSpace(raw))
		switch c {
		case "IMAP4REV1":
			c, base = "IMAP4rev1", true
		case "IMAP4REV2":
			c, base = "IMAP4rev2", true
		}
		if !isAtom(c) {
			ps.add(itemKey, "not a valid capability name: %q", raw)
			continue
		}
		if j, dup := seen[c]; dup {
			ps.add(itemKey, "duplicate of %s[%d] %q", key, j, c)
			continue
		}
		seen[c] = i
		out = append(out, c)
	}
	if !base {
		ps.add(key, "must include IMAP4rev1 or IMAP4rev2")
	}
	return out
}

// isAtom reports whether s is a non-empty IMAP atom (RFC 3501 ATOM-CHAR*).
func isAtom(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`(){%*"\]`, r) {
			return false
		}
	}
	return true
}
