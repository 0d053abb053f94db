package proxy

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/idlemux/idlemux/config"
)

// rcStartTLSScript is a python3 imaplib session over STARTTLS (RFC 3501
// 6.2.1): the capabilities before and after, LOGIN and SELECT.
const rcStartTLSScript = `
import imaplib, json, ssl, sys
cfg = json.loads(sys.argv[1])
out = {}
try:
    M = imaplib.IMAP4(cfg["host"], cfg["port"], timeout=20)
    out["before"] = sorted(M.capabilities)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    typ, _ = M.starttls(ssl_context=ctx)
    out["starttls"] = typ
    out["after"] = sorted(M.capabilities)
    typ, _ = M.login(cfg["user"], cfg["pass"])
    out["login"] = typ
    typ, dat = M.select("INBOX")
    out["select"] = [typ, dat[0].decode()]
    M.logout()
except Exception as e:
    out["error"] = repr(e)
print(json.dumps(out))
`

type rcStartTLSResult struct {
	Before, After   []string
	StartTLS, Login string
	Select          []string
	Error           string
}

func runStartTLSScript(t *testing.T, python, addr string) rcStartTLSResult {
	t.Helper()
	host, port := rcHostPort(t, addr)
	cfg, _ := json.Marshal(map[string]any{"host": host, "port": port, "user": testUser, "pass": testPass})
	r := rcRunTool(t, nil, python, "-c", rcStartTLSScript, string(cfg))
	var got rcStartTLSResult
	if err := json.Unmarshal(bytes.TrimSpace(r.stdout), &got); err != nil || r.exit != 0 {
		t.Fatalf("python3 STARTTLS script against %s: exit %d, %v\n%v", addr, r.exit, err, r)
	}
	if got.Error != "" {
		t.Fatalf("python3 STARTTLS script against %s raised %s", addr, got.Error)
	}
	return got
}

// TestImaplibStartTLS: python3's imaplib upgrades with STARTTLS, which the
// command reader runs itself, directly against Dovecot and through
// idlemux: STARTTLS offered before and not after, then LOGIN and SELECT
// answer alike. Through a listener without insecure_auth, LOGINDISABLED
// is offered before and AUTH=PLAIN only after.
func TestImaplibStartTLS(t *testing.T) {
	python := rcRequireTool(t, "python3", "python3")
	dv := startDovecot(t)
	rcSeedInbox(t, dv.Dial(t, testUser, testPass), "starttls", 2)
	cert, key := writeCert(t, t.TempDir(), "idlemux-test")
	cfg := testConfig(dv.Addr)
	cfg.TLS = config.TLS{CertFile: cert, KeyFile: key}
	cfg.Listeners = []config.Listener{
		{Address: "127.0.0.1:0", TLS: config.TLSStartTLS, InsecureAuth: true},
		{Address: "127.0.0.1:0", TLS: config.TLSStartTLS, InsecureAuth: false},
	}
	p := startProxy(t, cfg)

	direct := runStartTLSScript(t, python, dv.Addr)
	for i, addr := range p.Addrs() {
		got := runStartTLSScript(t, python, addr)
		if !slices.Contains(direct.Before, "STARTTLS") || slices.Contains(direct.After, "STARTTLS") {
			t.Fatalf("Dovecot directly: capabilities %v before and %v after STARTTLS (the reference changed)", direct.Before, direct.After)
		}
		if !slices.Contains(got.Before, "STARTTLS") || slices.Contains(got.After, "STARTTLS") {
			t.Errorf("listener %d: capabilities %v before and %v after STARTTLS, want STARTTLS only before (as Dovecot: %v, %v)", i, got.Before, got.After, direct.Before, direct.After)
		}
		wantDisabled := !cfg.Listeners[i].InsecureAuth
		if slices.Contains(got.Before, "LOGINDISABLED") != wantDisabled || slices.Contains(got.Before, "AUTH=PLAIN") == wantDisabled {
			t.Errorf("listener %d (insecure_auth %v): capabilities before STARTTLS %v", i, cfg.Listeners[i].InsecureAuth, got.Before)
		}
		if slices.Contains(got.After, "LOGINDISABLED") || !slices.Contains(got.After, "AUTH=PLAIN") {
			t.Errorf("listener %d: capabilities after STARTTLS %v, want AUTH=PLAIN and no LOGINDISABLED", i, got.After)
		}
		if got.StartTLS != direct.StartTLS || got.Login != direct.Login || !slices.Equal(got.Select, direct.Select) {
			t.Errorf("listener %d: STARTTLS %s, LOGIN %s, SELECT %v; Dovecot directly: %s, %s, %v", i, got.StartTLS, got.Login, got.Select, direct.StartTLS, direct.Login, direct.Select)
		}
	}
}
