package proxy

// End-to-end tests with real IMAP client programs from Debian (curl,
// python3's imaplib, isync's mbsync) talking to idlemux in front of a real
// Dovecot. Each test asserts what the client itself sees, and checks it
// against a direct session to Dovecot.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// rcClientTimeout bounds every run of an external client program.
const rcClientTimeout = 60 * time.Second

// rcRequireTool returns the path of the program name, or skips the test when
// it is missing (fails under CI=true, where a skip would hide regressions).
func rcRequireTool(t *testing.T, name, debPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (apt-get install -y %s); CI=true, so not skipping", name, debPackage)
		}
		t.Skipf("%s is not installed (apt-get install -y %s); skipping", name, debPackage)
	}
	return path
}

// rcCmdResult is what one run of an external program gave.
type rcCmdResult struct {
	stdout, stderr []byte
	exit           int // -1 if it did not exit normally (killed, timed out)
	err            error
	took           time.Duration
}

func (r rcCmdResult) String() string {
	return fmt.Sprintf("exit %d (%v) after %v\n--- stdout:\n%s\n--- stderr:\n%s", r.exit, r.err, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// rcRunTool runs bin with args (and env added to the test's environment) for
// at most rcClientTimeout.
func rcRunTool(t *testing.T, env []string, bin string, args ...string) rcCmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rcClientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := rcCmdResult{stdout: stdout.Bytes(), stderr: stderr.Bytes(), err: err, took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.exit = 0
	case errors.As(err, &ee) && ee.Exited():
		r.exit = ee.ExitCode()
	default:
		r.exit = -1
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %s: timed out after %v\n%v", filepath.Base(bin), strings.Join(args, " "), rcClientTimeout, r)
	}
	return r
}

// rcSeedInbox appends n test messages directly to Dovecot and returns their
// bodies by UID.
func rcSeedInbox(t *testing.T, direct *imapclient.Client, prefix string, n int) map[imap.UID]string {
	t.Helper()
	bodies := map[imap.UID]string{}
	for i := 0; i < n; i++ {
		body := testMessage(fmt.Sprintf("%s %d", prefix, i))
		bodies[appendMsg(t, direct, "INBOX", body)] = body
	}
	return bodies
}

// rcExpungeUID deletes one message directly on Dovecot (the direct client
// must have INBOX selected), so that later UIDs no longer equal their
// sequence numbers.
func rcExpungeUID(t *testing.T, direct *imapclient.Client, uid imap.UID) {
	t.Helper()
	if err := direct.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatalf("direct STORE \\Deleted: %v", err)
	}
	if err := direct.UIDExpunge(imap.UIDSetNum(uid)).Close(); err != nil {
		t.Fatalf("direct UID EXPUNGE: %v", err)
	}
}

// rcDirectUIDs is UID SEARCH ALL on a direct session with INBOX selected.
func rcDirectUIDs(t *testing.T, direct *imapclient.Client) []imap.UID {
	t.Helper()
	data, err := direct.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		t.Fatalf("direct UID SEARCH ALL: %v", err)
	}
	return data.AllUIDs()
}

// rcDirectFetch fetches UID, FLAGS and RFC822.SIZE (and optionally the whole
// body) of set on a direct session with INBOX selected.
func rcDirectFetch(t *testing.T, direct *imapclient.Client, set imap.NumSet, body bool) []*imapclient.FetchMessageBuffer {
	t.Helper()
	opts := &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true}
	if body {
		opts.BodySection = []*imap.FetchItemBodySection{{Peek: true}}
	}
	msgs, err := direct.Fetch(set, opts).Collect()
	if err != nil {
		t.Fatalf("direct FETCH %v: %v", set, err)
	}
	return msgs
}

// rcWithoutRecent drops \Recent, which is per session: a proxy multiplexing
// many clients onto one upstream session cannot reproduce it faithfully.
func rcWithoutRecent(flags []imap.Flag) []string {
	var out []string
	for _, f := range flags {
		if !strings.EqualFold(string(f), `\Recent`) {
			out = append(out, string(f))
		}
	}
	sort.Strings(out)
	return out
}

// rcHostPort splits addr into host and numeric port.
func rcHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, n
}

// ---------------------------------------------------------------- curl

// rcListNames parses curl's output of LIST "" * (the untagged LIST lines it
// prints verbatim) into mailbox name -> attributes (sorted, joined).
var rcListLine = regexp.MustCompile(`^\* LIST \(([^)]*)\) ("[^"]*"|NIL) (.+)$`)

func rcListNames(out []byte) map[string]string {
	names := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		m := rcListLine.FindStringSubmatch(strings.TrimRight(line, "\r"))
		if m == nil {
			continue
		}
		name := m[3]
		if uq, err := strconv.Unquote(name); err == nil && strings.HasPrefix(name, `"`) {
			name = uq
		}
		attrs := strings.Fields(strings.ToLower(m[1]))
		sort.Strings(attrs)
		names[name] = strings.Join(attrs, " ")
	}
	return names
}

// TestCurlThroughProxy drives curl's IMAP support through the proxy: it
// lists the mailboxes, fetches messages by UID and by sequence number (with
// UIDs that no longer equal sequence numbers), and is refused with a wrong
// password. Every answer is compared with the same curl command run
// directly against Dovecot, and message bytes with what was appended.
func TestCurlThroughProxy(t *testing.T) {
	curl := rcRequireTool(t, "curl", "curl")
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	bodies := rcSeedInbox(t, direct, "curl", 3)
	if _, err := direct.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	uids := rcDirectUIDs(t, direct)
	if len(uids) != 3 {
		t.Fatalf("direct UID SEARCH ALL after seeding: got %v, want 3 UIDs", uids)
	}
	// Drop the first message so that UID n is sequence number n-1.
	rcExpungeUID(t, direct, uids[0])
	uids = uids[1:]

	p := startProxy(t, testConfig(dv.Addr))
	proxyAddr := p.Addrs()[0]

	curlRun := func(t *testing.T, addr, url, user, pass string) rcCmdResult {
		t.Helper()
		return rcRunTool(t, nil, curl, "-s", "-S", "--max-time", "30",
			"--url", "imap://"+addr+url, "-u", user+":"+pass)
	}

	t.Run("list", func(t *testing.T) {
		got := curlRun(t, proxyAddr, "/", testUser, testPass)
		if got.exit != 0 {
			t.Fatalf("curl LIST through the proxy: got exit %d, want 0\n%v", got.exit, got)
		}
		want := curlRun(t, dv.Addr, "/", testUser, testPass)
		if want.exit != 0 {
			t.Fatalf("curl LIST directly on Dovecot: got exit %d, want 0\n%v", want.exit, want)
		}
		gotNames, wantNames := rcListNames(got.stdout), rcListNames(want.stdout)
		t.Logf("curl LIST through the proxy (%v):\n%s", got.took.Round(time.Millisecond), got.stdout)
		for _, name := range []string{"INBOX", "Sent", "Trash", "Drafts", "Junk"} {
			if _, ok := gotNames[name]; !ok {
				t.Errorf("curl LIST through the proxy: %q missing; got mailboxes %v\n%v", name, gotNames, got)
			}
		}
		for name, attrs := range wantNames {
			if g, ok := gotNames[name]; !ok {
				t.Errorf("curl LIST: %q listed by Dovecot directly but not through the proxy", name)
			} else if g != attrs {
				t.Errorf("curl LIST %q: got attributes (%s) through the proxy, want (%s) as Dovecot says directly", name, g, attrs)
			}
		}
		for name := range gotNames {
			if _, ok := wantNames[name]; !ok {
				t.Errorf("curl LIST: %q listed through the proxy but not by Dovecot directly", name)
			}
		}
		if t.Failed() {
			t.Logf("direct curl LIST output:\n%s", want.stdout)
		}
	})

	// curl's imap://host/INBOX sends LIST "INBOX" *: the reference must
	// reach Dovecot as given, so the answer is Dovecot's own.
	t.Run("list-reference", func(t *testing.T) {
		got := curlRun(t, proxyAddr, "/INBOX", testUser, testPass)
		want := curlRun(t, dv.Addr, "/INBOX", testUser, testPass)
		if got.exit != 0 || want.exit != 0 {
			t.Fatalf("curl /INBOX: exit %d through the proxy, %d directly\n%v\n%v", got.exit, want.exit, got, want)
		}
		if len(want.stdout) == 0 || !bytes.Equal(got.stdout, want.stdout) {
			t.Errorf("curl /INBOX: got %q through the proxy, %q directly from Dovecot", got.stdout, want.stdout)
		}
	})

	t.Run("fetch-by-uid", func(t *testing.T) {
		for _, uid := range uids {
			url := fmt.Sprintf("/INBOX;UID=%d", uid)
			got := curlRun(t, proxyAddr, url, testUser, testPass)
			if got.exit != 0 {
				t.Fatalf("curl %s through the proxy: got exit %d, want 0\n%v", url, got.exit, got)
			}
			if want := bodies[uid]; string(got.stdout) != want {
				t.Errorf("curl %s through the proxy: got %d bytes %q, want the %d bytes appended %q", url, len(got.stdout), got.stdout, len(want), want)
			}
			direct := curlRun(t, dv.Addr, url, testUser, testPass)
			if !bytes.Equal(got.stdout, direct.stdout) {
				t.Errorf("curl %s: got %q through the proxy, %q directly from Dovecot", url, got.stdout, direct.stdout)
			}
			t.Logf("curl %s through the proxy: %d bytes in %v (directly: %v)", url, len(got.stdout), got.took.Round(time.Millisecond), direct.took.Round(time.Millisecond))
		}
		// The expunged UID is gone: curl must not print another message.
		url := fmt.Sprintf("/INBOX;UID=%d", uids[len(uids)-1]+1)
		got := curlRun(t, proxyAddr, url, testUser, testPass)
		dir := curlRun(t, dv.Addr, url, testUser, testPass)
		if len(got.stdout) != 0 || got.exit != dir.exit {
			t.Errorf("curl %s (no such UID) through the proxy: got exit %d and %q; directly Dovecot gives exit %d and %q",
				url, got.exit, got.stdout, dir.exit, dir.stdout)
		}
		t.Logf("curl %s (no such UID): exit %d through the proxy, %d directly", url, got.exit, dir.exit)
	})

	t.Run("fetch-by-seq", func(t *testing.T) {
		for i, uid := range uids {
			url := fmt.Sprintf("/INBOX;MAILINDEX=%d", i+1)
			got := curlRun(t, proxyAddr, url, testUser, testPass)
			if got.exit != 0 {
				t.Fatalf("curl %s through the proxy: got exit %d, want 0\n%v", url, got.exit, got)
			}
			if want := bodies[uid]; string(got.stdout) != want {
				t.Errorf("curl %s (UID %d) through the proxy: got %q, want %q", url, uid, got.stdout, want)
			}
		}
	})

	t.Run("wrong-password", func(t *testing.T) {
		got := curlRun(t, proxyAddr, "/", testUser, "not-"+testPass)
		if got.exit != 67 {
			t.Errorf("curl with a wrong password through the proxy: got exit %d, want 67 (login denied)\n%v", got.exit, got)
		}
		if bytes.Contains(got.stdout, []byte("INBOX")) {
			t.Errorf("curl with a wrong password through the proxy listed mailboxes:\n%s", got.stdout)
		}
		// The refusal leaves the proxy working for the right password.
		if ok := curlRun(t, proxyAddr, "/", testUser, testPass); ok.exit != 0 {
			t.Errorf("curl LIST after a refused login: got exit %d, want 0\n%v", ok.exit, ok)
		}
	})
}

// ---------------------------------------------------------------- imaplib

// rcImaplibScript runs a session with Python's imaplib against the proxy and
// prints what it saw as JSON. Its one argument is a JSON config.
const rcImaplibScript = `
import base64, imaplib, json, re, sys, traceback

cfg = json.loads(sys.argv[1])
out = {"python": sys.version.split()[0], "has_idle": hasattr(imaplib.IMAP4, "idle")}

def s(b):
    if isinstance(b, (bytes, bytearray)):
        return bytes(b).decode("utf-8", "replace")
    return b

def exists_seen(M):
    typ, dat = M.response("EXISTS")
    return [int(x) for x in dat if x is not None]

try:
    M = imaplib.IMAP4(cfg["host"], cfg["port"], timeout=20)
    out["capabilities"] = sorted(M.capabilities)
    typ, dat = M.login(cfg["user"], cfg["pass"])
    out["login"] = typ
    out["capabilities_after_login"] = sorted(M.capabilities)
    typ, dat = M.select("INBOX")
    out["select"] = {"typ": typ, "exists": int(dat[0])}

    typ, dat = M.uid("SEARCH", "ALL")
    out["uid_search"] = {"typ": typ, "uids": [int(x) for x in dat[0].split()]}

    typ, dat = M.fetch("1:*", "(UID FLAGS RFC822.SIZE)")
    msgs = []
    for line in dat:
        if isinstance(line, tuple):
            line = line[0]
        m = re.match(rb"(\d+) \((.*)\)$", line)
        if not m:
            msgs.append({"unparsed": s(line)})
            continue
        items = m.group(2)
        uid = re.search(rb"\bUID (\d+)", items)
        flags = re.search(rb"\bFLAGS \(([^)]*)\)", items)
        size = re.search(rb"\bRFC822\.SIZE (\d+)", items)
        msgs.append({
            "seq": int(m.group(1)),
            "uid": int(uid.group(1)) if uid else 0,
            "flags": s(flags.group(1)).split() if flags else None,
            "size": int(size.group(1)) if size else -1,
        })
    out["fetch"] = {"typ": typ, "msgs": msgs}

    typ, dat = M.store("1", "+FLAGS", r"(\Flagged)")
    out["store"] = {"typ": typ, "data": [s(x) for x in dat if x is not None]}

    exists_seen(M)  # forget any EXISTS seen so far
    typ, dat = M.append("INBOX", None, None, cfg["append"].encode())
    out["append"] = {"typ": typ, "data": [s(x) for x in dat if x is not None], "exists": exists_seen(M)}
    typ, dat = M.noop()
    out["noop"] = {"typ": typ, "exists": exists_seen(M)}

    m = re.search(r"APPENDUID \d+ (\d+)", " ".join(out["append"]["data"]))
    if m:
        typ, dat = M.uid("FETCH", m.group(1), "(BODY.PEEK[])")
        body = b""
        for part in dat:
            if isinstance(part, tuple):
                body = part[1]
        out["fetch_appended"] = {"typ": typ, "body_b64": base64.b64encode(body).decode()}

    if out["has_idle"]:
        # While IDLE runs through the proxy, a direct session appends.
        target = out["select"]["exists"] + 2
        seen = []
        out["idle"] = {"seen": seen}
        try:
            idler = M.idle(duration=20)
        except imaplib.IMAP4.error as e:
            out["idle"]["error"] = str(e)
        else:
            with idler:
                D = imaplib.IMAP4(cfg["direct_host"], cfg["direct_port"], timeout=20)
                D.login(cfg["user"], cfg["pass"])
                D.append("INBOX", None, None, cfg["idle_append"].encode())
                D.logout()
                for typ, datum in idler:
                    if not isinstance(datum, list):
                        datum = [datum]
                    seen.append([s(typ), [s(x) for x in datum]])
                    if s(typ) == "EXISTS" and any(str(target) == s(x) for x in datum):
                        break
            typ, dat = M.noop()
            out["idle"]["noop_after"] = typ

    typ, dat = M.logout()
    out["logout"] = typ
except Exception:
    out["error"] = traceback.format_exc()
print(json.dumps(out))
`

type rcImaplibResult struct {
	Python       string   `json:"python"`
	HasIdle      bool     `json:"has_idle"`
	Capabilities []string `json:"capabilities"`
	CapsAfter    []string `json:"capabilities_after_login"`
	Login        string   `json:"login"`
	Select       struct {
		Typ    string `json:"typ"`
		Exists int    `json:"exists"`
	} `json:"select"`
	UIDSearch struct {
		Typ  string     `json:"typ"`
		UIDs []imap.UID `json:"uids"`
	} `json:"uid_search"`
	Fetch struct {
		Typ  string `json:"typ"`
		Msgs []struct {
			Seq      uint32   `json:"seq"`
			UID      imap.UID `json:"uid"`
			Flags    []string `json:"flags"`
			Size     int64    `json:"size"`
			Unparsed string   `json:"unparsed"`
		} `json:"msgs"`
	} `json:"fetch"`
	Store struct {
		Typ  string   `json:"typ"`
		Data []string `json:"data"`
	} `json:"store"`
	Append struct {
		Typ    string   `json:"typ"`
		Data   []string `json:"data"`
		Exists []int    `json:"exists"`
	} `json:"append"`
	Noop struct {
		Typ    string `json:"typ"`
		Exists []int  `json:"exists"`
	} `json:"noop"`
	FetchAppended *struct {
		Typ     string `json:"typ"`
		BodyB64 string `json:"body_b64"`
	} `json:"fetch_appended"`
	Idle *struct {
		Seen      [][]any `json:"seen"`
		NoopAfter string  `json:"noop_after"`
		Error     string  `json:"error"`
	} `json:"idle"`
	Logout string `json:"logout"`
	Error  string `json:"error"`
}

// TestImaplibThroughProxy runs a Python imaplib session through the proxy
// (LOGIN, SELECT, UID SEARCH, FETCH, STORE, APPEND, NOOP, and IDLE where
// imaplib has it, Python 3.14+) and checks every answer against a direct
// session to Dovecot: same UIDs, flags and sizes, the flag really set
// upstream, the appended message really there, and the new EXISTS reported.
func TestImaplibThroughProxy(t *testing.T) {
	python := rcRequireTool(t, "python3", "python3")
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	rcSeedInbox(t, direct, "imaplib", 4)
	if _, err := direct.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Expunge the first so UIDs differ from sequence numbers, and mark one
	// \Seen so flags are not all alike.
	rcExpungeUID(t, direct, rcDirectUIDs(t, direct)[0])
	before := rcDirectUIDs(t, direct)
	if err := direct.Store(imap.UIDSetNum(before[1]), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	wantMsgs := rcDirectFetch(t, direct, imap.SeqSet{{Start: 1, Stop: 0}}, false)

	p := startProxy(t, testConfig(dv.Addr))
	host, port := rcHostPort(t, p.Addrs()[0])
	dhost, dport := rcHostPort(t, dv.Addr)
	appended := testMessage("imaplib appended")
	cfg, _ := json.Marshal(map[string]any{
		"host": host, "port": port, "user": testUser, "pass": testPass,
		"direct_host": dhost, "direct_port": dport,
		"append": appended, "idle_append": testMessage("imaplib idle"),
	})
	r := rcRunTool(t, nil, python, "-c", rcImaplibScript, string(cfg))
	if r.exit != 0 {
		t.Fatalf("python3 imaplib script: got exit %d, want 0\n%v", r.exit, r)
	}
	var got rcImaplibResult
	if err := json.Unmarshal(bytes.TrimSpace(r.stdout), &got); err != nil {
		t.Fatalf("python3 imaplib script printed no JSON: %v\n%v", err, r)
	}
	t.Logf("python %s (imaplib IDLE: %v) ran its session through the proxy in %v", got.Python, got.HasIdle, r.took.Round(time.Millisecond))
	if got.Error != "" {
		t.Fatalf("imaplib session through the proxy raised:\n%s\nJSON so far: %s", got.Error, r.stdout)
	}
	defer func() {
		if t.Failed() {
			t.Logf("imaplib JSON: %s", r.stdout)
		}
	}()

	if got.Login != "OK" {
		t.Errorf("LOGIN: got %q, want OK", got.Login)
	}
	if got.Select.Typ != "OK" || got.Select.Exists != len(before) {
		t.Errorf("SELECT INBOX: got %s with EXISTS %d, want OK with %d", got.Select.Typ, got.Select.Exists, len(before))
	}
	if got.UIDSearch.Typ != "OK" || !slices.Equal(got.UIDSearch.UIDs, before) {
		t.Errorf("UID SEARCH ALL: got %s %v, want OK %v (Dovecot directly)", got.UIDSearch.Typ, got.UIDSearch.UIDs, before)
	}

	// FETCH 1:* (UID FLAGS RFC822.SIZE) against the same FETCH made directly.
	if got.Fetch.Typ != "OK" || len(got.Fetch.Msgs) != len(wantMsgs) {
		t.Errorf("FETCH 1:*: got %s with %d messages, want OK with %d", got.Fetch.Typ, len(got.Fetch.Msgs), len(wantMsgs))
	}
	for i, m := range got.Fetch.Msgs {
		if i >= len(wantMsgs) {
			break
		}
		w := wantMsgs[i]
		if m.Unparsed != "" {
			t.Errorf("FETCH 1:*: unparsable response line %q", m.Unparsed)
			continue
		}
		gotFlags := rcWithoutRecent(func() (fs []imap.Flag) {
			for _, f := range m.Flags {
				fs = append(fs, imap.Flag(f))
			}
			return
		}())
		if m.Seq != w.SeqNum || m.UID != w.UID || m.Size != w.RFC822Size || !slices.Equal(gotFlags, rcWithoutRecent(w.Flags)) {
			t.Errorf("FETCH 1:* message %d: got seq %d UID %d FLAGS %v RFC822.SIZE %d; want seq %d UID %d FLAGS %v RFC822.SIZE %d (Dovecot directly)",
				i+1, m.Seq, m.UID, gotFlags, m.Size, w.SeqNum, w.UID, rcWithoutRecent(w.Flags), w.RFC822Size)
		}
	}

	// STORE 1 +FLAGS (\Flagged): answered with the new flags and set upstream.
	if got.Store.Typ != "OK" {
		t.Errorf("STORE 1 +FLAGS (\\Flagged): got %s %v, want OK", got.Store.Typ, got.Store.Data)
	}
	if s := strings.Join(got.Store.Data, " "); !strings.Contains(s, `\Flagged`) || !strings.HasPrefix(s, "1 ") {
		t.Errorf("STORE 1 +FLAGS (\\Flagged): got untagged %q, want a FETCH of message 1 with \\Flagged", s)
	}
	if up := rcDirectFetch(t, direct, imap.UIDSetNum(before[0]), false); len(up) != 1 || !slices.Contains(up[0].Flags, imap.FlagFlagged) {
		t.Errorf("STORE 1 +FLAGS (\\Flagged) through the proxy: Dovecot directly has UID %d with %v, want \\Flagged", before[0], up)
	}
	for _, uid := range before[1:] {
		if up := rcDirectFetch(t, direct, imap.UIDSetNum(uid), false); len(up) == 1 && slices.Contains(up[0].Flags, imap.FlagFlagged) {
			t.Errorf("STORE 1 +FLAGS (\\Flagged) through the proxy also flagged UID %d upstream", uid)
		}
	}

	// APPEND: APPENDUID names a message that Dovecot has, with our bytes.
	m := regexp.MustCompile(`APPENDUID \d+ (\d+)`).FindStringSubmatch(strings.Join(got.Append.Data, " "))
	if got.Append.Typ != "OK" || m == nil {
		t.Fatalf("APPEND: got %s %v, want OK [APPENDUID ...]", got.Append.Typ, got.Append.Data)
	}
	newUID64, _ := strconv.ParseUint(m[1], 10, 32)
	newUID := imap.UID(newUID64)
	after := rcDirectUIDs(t, direct)
	want := append(slices.Clone(before), newUID)
	if got.Idle != nil && got.Idle.Error == "" && len(after) == len(want)+1 && after[len(want)] > newUID {
		after = after[:len(want)] // the one appended directly during IDLE
	}
	if !slices.Equal(after, want) {
		t.Errorf("after APPEND through the proxy: Dovecot directly has UIDs %v, want %v", after, want)
	}
	up := rcDirectFetch(t, direct, imap.UIDSetNum(newUID), true)
	if len(up) != 1 || len(up[0].BodySection) != 1 || string(up[0].BodySection[0].Bytes) != appended {
		t.Errorf("APPEND through the proxy: Dovecot directly has UID %d as %v, want the %d bytes appended", newUID, up, len(appended))
	}
	if got.FetchAppended == nil {
		t.Errorf("UID FETCH %d (BODY.PEEK[]) was not run", newUID)
	} else if body, _ := base64.StdEncoding.DecodeString(got.FetchAppended.BodyB64); got.FetchAppended.Typ != "OK" || string(body) != appended {
		t.Errorf("UID FETCH %d (BODY.PEEK[]) through the proxy: got %s %q, want OK %q", newUID, got.FetchAppended.Typ, body, appended)
	}

	// The client must know of the new message by the end of NOOP at the
	// latest (RFC 3501 lets the server tell it in APPEND's answer already).
	wantExists := len(before) + 1
	seen := append(slices.Clone(got.Append.Exists), got.Noop.Exists...)
	if got.Noop.Typ != "OK" || len(seen) == 0 || seen[len(seen)-1] != wantExists {
		t.Errorf("APPEND then NOOP: got EXISTS %v during APPEND and %v during NOOP (%s), want the last to be %d",
			got.Append.Exists, got.Noop.Exists, got.Noop.Typ, wantExists)
	}
	t.Logf("new message reported as EXISTS %v in APPEND's answer, %v in NOOP's", got.Append.Exists, got.Noop.Exists)

	if got.HasIdle {
		if got.Idle == nil {
			t.Fatalf("imaplib has IDLE but the script ran none")
		}
		if got.Idle.Error != "" {
			// imaplib checks the capabilities it holds; Dovecot lists IDLE
			// before and after login, so a direct session could IDLE.
			t.Fatalf("IDLE through the proxy: imaplib refused with %q; its capabilities: %v at connect, %v after LOGIN; want IDLE among them as Dovecot advertises",
				got.Idle.Error, got.Capabilities, got.CapsAfter)
		}
		ok := false
		for _, r := range got.Idle.Seen {
			if len(r) == 2 && r[0] == "EXISTS" && fmt.Sprint(r[1]) == fmt.Sprintf("[%d]", wantExists+1) {
				ok = true
			}
		}
		if !ok || got.Idle.NoopAfter != "OK" {
			t.Errorf("IDLE through the proxy while Dovecot got an APPEND directly: got responses %v (then NOOP %s), want EXISTS %d",
				got.Idle.Seen, got.Idle.NoopAfter, wantExists+1)
		}
	} else {
		t.Logf("python %s's imaplib has no IDLE (3.14+); IDLE not tested", got.Python)
	}
	if got.Logout != "BYE" && got.Logout != "OK" {
		t.Errorf("LOGOUT: got %q, want BYE", got.Logout)
	}
}

// ---------------------------------------------------------------- mbsync

// rcMbsyncVersion returns isync's version as [major, minor].
func rcMbsyncVersion(t *testing.T, bin string) [2]int {
	t.Helper()
	r := rcRunTool(t, nil, bin, "--version")
	m := regexp.MustCompile(`(\d+)\.(\d+)`).FindSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("mbsync --version: no version in its output\n%v", r)
	}
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	return [2]int{major, minor}
}

// rcMaildirMsg is one message file of a Maildir folder.
type rcMaildirMsg struct {
	path  string
	flags string // the letters after ":2,"
	body  []byte
}

// rcReadMaildir returns the messages in dir's cur and new subfolders.
func rcReadMaildir(t *testing.T, dir string) []rcMaildirMsg {
	t.Helper()
	var msgs []rcMaildirMsg
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatalf("maildir: %v", err)
		}
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			path := filepath.Join(dir, sub, e.Name())
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var flags string
			if i := strings.LastIndex(e.Name(), ":2,"); i >= 0 {
				flags = e.Name()[i+3:]
			}
			msgs = append(msgs, rcMaildirMsg{path: path, flags: flags, body: body})
		}
	}
	return msgs
}

// rcFindBySubject returns the maildir message whose Subject is subject.
func rcFindBySubject(msgs []rcMaildirMsg, subject string) *rcMaildirMsg {
	for i := range msgs {
		if bytes.Contains(msgs[i].body, []byte("\nSubject: "+subject+"\r\n")) || bytes.Contains(msgs[i].body, []byte("\nSubject: "+subject+"\n")) {
			return &msgs[i]
		}
	}
	return nil
}

// rcSameMessage reports whether a file mbsync wrote holds body. isync stores
// Maildir messages with LF line ends (and may add an X-TUID header when it
// cannot learn UIDs otherwise), so both are allowed for.
func rcSameMessage(file []byte, body string) bool {
	lf := strings.ReplaceAll(body, "\r\n", "\n")
	f := string(file)
	if f == body || f == lf {
		return true
	}
	f = regexp.MustCompile(`(?m)^X-TUID: [^\n]*\n`).ReplaceAllString(f, "")
	return f == body || f == lf
}

// TestMbsyncThroughProxy syncs INBOX into a local Maildir with isync's
// mbsync: the Maildir must hold exactly the messages appended directly to
// Dovecot, with their bytes; an APPEND made directly on Dovecot between two
// runs must arrive on the next run, and a flag set directly on Dovecot must
// reach the file name (":2,F"). The same scenario runs once straight
// against Dovecot ("direct", the reference: it proves the scenario and the
// checks right) and once through the proxy, each on its own Dovecot.
func TestMbsyncThroughProxy(t *testing.T) {
	mbsync := rcRequireTool(t, "mbsync", "isync")
	ver := rcMbsyncVersion(t, mbsync)
	t.Logf("isync %d.%d", ver[0], ver[1])
	for _, via := range []string{"direct", "proxy", "direct-compress", "proxy-compress"} {
		t.Run(via, func(t *testing.T) {
			rcMbsyncScenario(t, mbsync, ver, strings.HasPrefix(via, "proxy"), strings.HasSuffix(via, "-compress"))
		})
	}
}

// rcMbsyncScenario runs the scenario directly or through idlemux, with
// COMPRESS=DEFLATE offered (Dovecot's imap_zlib, idlemux's compress) or
// not; mbsync must use it exactly when it is offered.
func rcMbsyncScenario(t *testing.T, mbsync string, ver [2]int, viaProxy, compress bool) {
	dv := startDovecot(t)
	if compress && !viaProxy {
		dv = startDovecotZlib(t)
	}
	direct := dv.Dial(t, testUser, testPass)
	const n = 5
	bodies := map[string]string{}
	for i := 0; i < n; i++ {
		subject := fmt.Sprintf("mbsync %d", i)
		bodies[subject] = testMessage(subject)
		appendMsg(t, direct, "INBOX", bodies[subject])
	}
	addr := dv.Addr
	if viaProxy {
		cfg := testConfig(dv.Addr)
		cfg.Compress = compress
		addr = startProxy(t, cfg).Addrs()[0]
	}
	host, port := rcHostPort(t, addr)

	dir := t.TempDir()
	inbox := filepath.Join(dir, "mail", "INBOX")
	if err := os.Mkdir(filepath.Join(dir, "mail"), 0o700); err != nil {
		t.Fatal(err) // isync creates mailboxes, not the store's Path
	}
	tlsKey := "SSLType" // isync < 1.5
	if ver[0] > 1 || ver[0] == 1 && ver[1] >= 5 {
		tlsKey = "TLSType"
	}
	rc := fmt.Sprintf(`IMAPAccount account
Host %s
Port %d
User %s
Pass %s
%s None
AuthMechs LOGIN
Timeout 30

IMAPStore remote
Account account

MaildirStore local
Path %s/
Inbox %s
SubFolders Verbatim

Channel inbox
Far :remote:
Near :local:
Patterns INBOX
Create Near
Sync Pull
SyncState *
`, host, port, testUser, testPass, tlsKey, filepath.Join(dir, "mail"), inbox)
	rcPath := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + dir} // keep isync's defaults away from the real home

	// sync runs mbsync with its network trace (-Dn: commands and responses,
	// password and message bodies left out), logged if the test fails.
	sync := func(t *testing.T) {
		t.Helper()
		r := rcRunTool(t, env, mbsync, "-Dn", "-c", rcPath, "-a")
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("mbsync -Dn -a trace:\n%v", r)
			}
		})
		if r.exit != 0 {
			t.Fatalf("mbsync -a: got exit %d, want 0", r.exit)
		}
		if used := bytes.Contains(r.stdout, []byte("COMPRESS DEFLATE")); used != compress {
			t.Errorf("mbsync sent COMPRESS DEFLATE: %v, want %v (offered)", used, compress)
		}
		t.Logf("mbsync -a took %v", r.took.Round(time.Millisecond))
	}
	checkFiles := func(t *testing.T, want int) []rcMaildirMsg {
		t.Helper()
		msgs := rcReadMaildir(t, inbox)
		if len(msgs) != want {
			var names []string
			for _, m := range msgs {
				names = append(names, filepath.Base(m.path))
			}
			t.Errorf("Maildir after mbsync: got %d message files %v, want %d", len(msgs), names, want)
		}
		for subject, body := range bodies {
			m := rcFindBySubject(msgs, subject)
			if m == nil {
				t.Errorf("Maildir after mbsync: got no file holding %q, want one", subject)
			} else if !rcSameMessage(m.body, body) {
				t.Errorf("Maildir file %s: got %q, want %q (as appended, LF line ends allowed)", filepath.Base(m.path), m.body, body)
			}
		}
		return msgs
	}

	if !t.Run("initial", func(t *testing.T) {
		sync(t)
		checkFiles(t, n)
	}) {
		return
	}

	t.Run("new-message", func(t *testing.T) {
		bodies["mbsync late"] = testMessage("mbsync late")
		appendMsg(t, direct, "INBOX", bodies["mbsync late"])
		sync(t)
		checkFiles(t, n+1)
	})

	t.Run("flag-pulled", func(t *testing.T) {
		if _, err := direct.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		uids := rcDirectUIDs(t, direct)
		// Message 2 is "mbsync 1".
		if err := direct.Store(imap.UIDSetNum(uids[1]), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		sync(t)
		msgs := checkFiles(t, n+1)
		for subject := range bodies {
			m := rcFindBySubject(msgs, subject)
			if m == nil {
				continue
			}
			flagged := strings.Contains(m.flags, "F")
			if want := subject == "mbsync 1"; flagged != want {
				t.Errorf("Maildir file for %q after mbsync: got %s (flags %q), want \\Flagged=%v as on Dovecot", subject, filepath.Base(m.path), m.flags, want)
			}
		}
	})
}
