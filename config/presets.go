package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// preset is what upstream.preset fills in; any key set explicitly beside
// it wins. Zero fields leave the default alone.
type preset struct {
	Address     string
	TLS         TLSMode
	IdleRefresh time.Duration
	MaxConns    int // max_connections_per_account: kept under the provider's per-account cap
}

// presets is the one table of provider settings (issue 13); configs/
// providers.md lists the same values and TestPresetsMatchProvidersDoc
// keeps them in step. Addresses and TLS are the providers' published
// client settings; the IDLE cut-offs and connection caps are the commonly
// reported figures of configs/providers.md (lower is safe: a refresh
// costs one DONE/IDLE round trip).
var presets = map[string]preset{
	// imap.gmail.com:993 SSL: Google, "Read Gmail messages on other email
	// clients using POP/IMAP" (support.google.com/mail/answer/7126229).
	// Gmail ends IDLE after about 10 minutes; it allows 15 connections
	// per account (10 in Google's 2008 help answer 97150): 8 leaves room
	// for the user's other clients.
	"gmail": {Address: "imap.gmail.com:993", TLS: TLSImplicit, IdleRefresh: 9 * time.Minute, MaxConns: 8},
	// outlook.office365.com:993 SSL/TLS: Microsoft, "POP, IMAP, and SMTP
	// settings for Outlook.com" (serves Exchange Online too). IDLE ends
	// after about 5 minutes on Outlook.com (10 on Exchange Online: the
	// shorter one is safe for both); Exchange Online allows 20
	// connections per account.
	"outlook": {Address: "outlook.office365.com:993", TLS: TLSImplicit, IdleRefresh: 4 * time.Minute, MaxConns: 8},
	// imap.mail.yahoo.com:993 SSL: Yahoo Help, "IMAP server settings for
	// Yahoo Mail". IDLE ends after about 5 minutes.
	"yahoo": {Address: "imap.mail.yahoo.com:993", TLS: TLSImplicit, IdleRefresh: 4 * time.Minute},
	// imap.mail.me.com:993 SSL: Apple, "iCloud Mail server settings for
	// other email client apps" (support.apple.com/102525). IDLE ends
	// after about 5 minutes.
	"icloud": {Address: "imap.mail.me.com:993", TLS: TLSImplicit, IdleRefresh: 4 * time.Minute},
	// imap.fastmail.com:993 SSL: Fastmail help, "Server names and ports".
	// IDLE lasts the 30 minutes RFC 2177 allows: the default 25m holds.
	"fastmail": {Address: "imap.fastmail.com:993", TLS: TLSImplicit},
	// Self-hosted Dovecot: the address is the operator's. Dovecot never
	// ends IDLE (it sends its own "* OK Still here", imap_idle_notify_interval)
	// and allows mail_max_userip_connections = 10 per user and IP: the
	// defaults (25m, 5) fit.
	"dovecot": {TLS: TLSImplicit},
}

// presetNames lists the presets in a stable order for messages.
func presetNames() string {
	var names []string
	for n := range presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// applyPreset fills c from the named preset before the explicit keys are
// applied over it; it returns the preset's address, "" when it has none.
func applyPreset(key string, name *string, c *Upstream, ps *problems) string {
	if name == nil {
		return ""
	}
	p, ok := presets[*name]
	if !ok {
		ps.add(key, "must be one of %s, got %q", presetNames(), *name)
		return ""
	}
	c.Preset = *name
	if p.TLS != "" {
		c.TLS = p.TLS
	}
	if p.IdleRefresh > 0 {
		c.IdleRefresh = p.IdleRefresh
	}
	if p.MaxConns > 0 {
		c.MaxConnectionsPerAccount = p.MaxConns
	}
	return p.Address
}

// presetsMarkdown renders the table as configs/providers.md shows it.
func presetsMarkdown() string {
	var b strings.Builder
	b.WriteString("| preset | address | tls | idle_refresh | max_connections_per_account |\n|---|---|---|---|---|\n")
	names := strings.Split(presetNames(), ", ")
	for _, n := range names {
		p := presets[n]
		addr, idle, conns := p.Address, shortDuration(defaultIdleRefresh)+" (default)", strconv.Itoa(defaultMaxConnectionsPerAccount)+" (default)"
		if addr == "" {
			addr = "(yours)"
		}
		if p.IdleRefresh > 0 {
			idle = shortDuration(p.IdleRefresh)
		}
		if p.MaxConns > 0 {
			conns = strconv.Itoa(p.MaxConns)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", n, addr, p.TLS, idle, conns)
	}
	return b.String()
}
