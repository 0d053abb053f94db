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
	MaxConns    int    // max_connections_per_account: kept under the provider's per-account cap
	OAuth2Mech  string // oauth2_mechanism: the SASL mechanism the provider documents for bearer tokens
	MaxWrites   int    // max_writes_per_mailbox: hostedWrites for a provider across the Internet
}

// hostedWrites is max_writes_per_mailbox for the hosted providers. The
// default (1) is measured against Dovecot on the same machine, whose
// mailbox locks serialise writes anyway (BENCHMARKS.md, issue 11). A
// provider across the Internet answers each write a round trip later:
// one at a time, ten sessions' writes to a mailbox would wait ten round
// trips, so four run at once there. Reasoned, not measured: this
// machine reaches no provider.
const hostedWrites = 4

// presets is the one table of provider settings (issue 13); configs/
// providers.md lists the same values and TestPresetsMatchProvidersDoc
// keeps them in step. Each value's source is the comment beside it.
// Addresses and TLS are the providers' published client settings; the
// IDLE cut-offs and connection caps are the commonly reported figures of
// configs/providers.md (lower is safe: a refresh costs one DONE/IDLE
// round trip). TLS is implicit (port 993) everywhere: RFC 8314 4.1 has
// mail clients prefer it to STARTTLS. The OAuth2 mechanism matters only
// to map-mode users with an oauth2_token_file; where a provider documents
// none (app passwords only), the default stays.
var presets = map[string]preset{
	"gmail": {
		// Google, "Read Gmail messages on other email clients using
		// POP/IMAP" (support.google.com/mail/answer/7126229): incoming
		// server imap.gmail.com, port 993, requires SSL.
		Address: "imap.gmail.com:993", TLS: TLSImplicit,
		MaxWrites: hostedWrites,
		// Gmail ends IDLE after about 10 minutes (configs/providers.md).
		IdleRefresh: 9 * time.Minute,
		// 15 connections per account (10 in Google's 2008 help answer
		// 97150): 8 leaves room for the user's other clients.
		MaxConns: 8,
		// Google, "OAuth 2.0 Mechanism" (developers.google.com/gmail/
		// imap/xoauth2-protocol): SASL XOAUTH2.
		OAuth2Mech: "xoauth2",
	},
	"outlook": {
		// Microsoft, "POP, IMAP, and SMTP settings for Outlook.com"
		// (serves Exchange Online too): outlook.office365.com, port 993,
		// encryption SSL/TLS.
		Address: "outlook.office365.com:993", TLS: TLSImplicit,
		MaxWrites: hostedWrites,
		// IDLE ends after about 5 minutes on Outlook.com (10 on Exchange
		// Online): the shorter one is safe for both.
		IdleRefresh: 4 * time.Minute,
		// Exchange Online allows 20 connections per account.
		MaxConns: 8,
		// Microsoft, "Authenticate an IMAP, POP or SMTP connection using
		// OAuth" (learn.microsoft.com/exchange/client-developer/
		// legacy-protocols): SASL XOAUTH2.
		OAuth2Mech: "xoauth2",
	},
	"yahoo": {
		// Yahoo Help, "IMAP server settings for Yahoo Mail":
		// imap.mail.yahoo.com, port 993, requires SSL.
		Address: "imap.mail.yahoo.com:993", TLS: TLSImplicit,
		MaxWrites: hostedWrites,
		// IDLE ends after about 5 minutes.
		IdleRefresh: 4 * time.Minute,
		// Yahoo, "IMAP/SMTP Exchange using OAUTH2" (senders.yahooinc.com/
		// developer/documentation): SASL OAUTHBEARER, RFC 7628.
		OAuth2Mech: "oauthbearer",
	},
	"icloud": {
		// Apple, "iCloud Mail server settings for other email client
		// apps" (support.apple.com/102525): imap.mail.me.com, port 993,
		// SSL required. Apple documents app-specific passwords, no OAuth.
		Address: "imap.mail.me.com:993", TLS: TLSImplicit,
		MaxWrites: hostedWrites,
		// IDLE ends after about 5 minutes.
		IdleRefresh: 4 * time.Minute,
	},
	"fastmail": {
		// Fastmail help, "Server names and ports": imap.fastmail.com,
		// port 993, SSL/TLS. Third-party clients use app passwords.
		Address: "imap.fastmail.com:993", TLS: TLSImplicit,
		MaxWrites: hostedWrites,
		// IDLE lasts the 30 minutes RFC 2177 allows: the default 25m
		// holds.
	},
	"dovecot": {
		// Self-hosted Dovecot: the address is the operator's; 993 with
		// TLS is its imaps listener (doc.dovecot.org, "SSL"). Dovecot
		// never ends IDLE (it sends its own "* OK Still here",
		// imap_idle_notify_interval) and allows mail_max_userip_connections
		// = 10 per user and IP: the defaults (25m, 5) fit. Its oauth2
		// passdb takes both mechanisms: the default stays.
		TLS: TLSImplicit,
	},
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
	if p.OAuth2Mech != "" {
		c.OAuth2Mechanism = p.OAuth2Mech
	}
	if p.MaxWrites > 0 {
		c.MaxWritesPerMailbox = p.MaxWrites
	}
	return p.Address
}

// presetsMarkdown renders the table as configs/providers.md shows it.
func presetsMarkdown() string {
	var b strings.Builder
	b.WriteString("| preset | address | tls | idle_refresh | max_connections_per_account | oauth2_mechanism | max_writes_per_mailbox |\n|---|---|---|---|---|---|---|\n")
	names := strings.Split(presetNames(), ", ")
	for _, n := range names {
		p := presets[n]
		addr, idle, conns, mech := p.Address, shortDuration(defaultIdleRefresh)+" (default)", strconv.Itoa(defaultMaxConnectionsPerAccount)+" (default)", defaultOAuth2Mechanism+" (default)"
		if addr == "" {
			addr = "(yours)"
		}
		if p.IdleRefresh > 0 {
			idle = shortDuration(p.IdleRefresh)
		}
		if p.MaxConns > 0 {
			conns = strconv.Itoa(p.MaxConns)
		}
		if p.OAuth2Mech != "" {
			mech = p.OAuth2Mech
		}
		writes := strconv.Itoa(defaultMaxWritesPerMailbox) + " (default)"
		if p.MaxWrites > 0 {
			writes = strconv.Itoa(p.MaxWrites)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s |\n", n, addr, p.TLS, idle, conns, mech, writes)
	}
	return b.String()
}
