package proxy

import (
	"bufio"
	"compress/flate"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/dovecottest"
)

// zlibConf turns on Dovecot's COMPRESS=DEFLATE (imap_zlib).
const zlibConf = "mail_plugins = $mail_plugins zlib\nprotocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n"

// startDovecotZlib is startDovecot with COMPRESS=DEFLATE.
func startDovecotZlib(t *testing.T) *dovecottest.Server {
	t.Helper()
	return dovecottest.Start(t, dovecottest.Options{Users: map[string]string{testUser: testPass}, ExtraConf: zlibConf})
}

// zClientConn is a client's side of COMPRESS=DEFLATE: every Write (one
// command line, as rawConn sends them) goes out whole with a sync flush.
type zClientConn struct {
	net.Conn
	zw *flate.Writer
}

func (z *zClientConn) Write(p []byte) (int, error) {
	if _, err := z.zw.Write(p); err != nil {
		return 0, err
	}
	return len(p), z.zw.Flush()
}

// compressed turns rc into a compressing client, after a tagged OK to
// COMPRESS DEFLATE: what the server sent after that line is compressed.
func (rc *rawConn) compressed() {
	zw, err := flate.NewWriter(rc.c, 5)
	if err != nil {
		rc.t.Fatal(err)
	}
	rc.r = bufio.NewReader(flate.NewReader(rc.r))
	rc.c = &zClientConn{Conn: rc.c, zw: zw}
}

// compressScript runs one compressed session's conversation against addr:
// the COMPRESS refusals and acceptance, SELECT, a FETCH of headers, IDLE
// told of an APPEND made on Dovecot directly (by appendDirect), NOOP,
// CAPABILITY and LOGOUT. It returns the lines, shaped for wireShape.
func compressScript(t *testing.T, rc *rawConn, appendDirect func()) []string {
	t.Helper()
	var out []string
	run := func(tag, cmd string, lines []string) {
		out = append(out, "c "+cmd)
		for _, l := range lines {
			out = append(out, "c: "+l)
		}
	}
	for i, cmd := range []string{"COMPRESS DEFLATE", "LOGIN " + testUser + " " + testPass, "COMPRESS", "COMPRESS FOO", "COMPRESS DEFLATE X", `COMPRESS "DEFLATE"`, "COMPRESS {7+}\r\nDEFLATE"} {
		tag := fmt.Sprintf("p%d", i)
		run(tag, cmd, rc.cmd(tag, cmd))
	}
	got := rc.cmd("z", "COMPRESS deflate")
	run("z", "COMPRESS deflate", got)
	if !strings.HasPrefix(got[len(got)-1], "z OK") {
		t.Fatalf("COMPRESS: got %q", got)
	}
	rc.compressed()
	for i, cmd := range []string{"COMPRESS DEFLATE", "COMPRESS FOO", "COMPRESS", "SELECT INBOX", "FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])", "CAPABILITY",
		// the relayed and locally answered paths write through the compressor too
		`LIST "" "*"`, `LSUB "" "*"`, "SEARCH UNSEEN", "UID FETCH 1:* (FLAGS)", "STATUS INBOX (MESSAGES UNSEEN)"} {
		tag := fmt.Sprintf("c%d", i)
		run(tag, cmd, rc.cmd(tag, cmd))
	}
	fmt.Fprintf(rc.c, "i IDLE\r\n")
	idle := []string{rc.line()}
	appendDirect()
	for !strings.HasSuffix(idle[len(idle)-1], " EXISTS") {
		idle = append(idle, rc.line())
	}
	fmt.Fprintf(rc.c, "DONE\r\n")
	run("i", "IDLE", append(idle, rc.answer("i")...))
	run("n", "NOOP", rc.cmd("n", "NOOP"))
	run("o", "LOGOUT", rc.cmdUntilClose("o", "LOGOUT"))
	return out
}

// TestDovecotCompress: a raw client speaks COMPRESS=DEFLATE (RFC 4978)
// with Dovecot directly (imap_zlib) and through idlemux, over plain TCP
// and implicit TLS; after decompression the wires are the same, the
// refusals (before login, with bad arguments, an unknown mechanism,
// COMPRESSIONACTIVE) included, and the capability lists after login end
// with COMPRESS=DEFLATE as Dovecot's do (then idlemux's APPENDLIMIT).
func TestDovecotCompress(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			want := compressRun(t, false, useTLS)
			got := compressRun(t, true, useTLS)
			diffWire(t, got, want)
		})
	}
}

// compressRun runs compressScript on a fresh Dovecot with three messages,
// directly or through idlemux, over plain TCP or implicit TLS. The
// capability lists (Dovecot's has more: notOfferedByIdlemux) are checked
// for COMPRESS=DEFLATE last, before idlemux's APPENDLIMIT, then compared
// by TestDovecotCompressCapabilities.
func compressRun(t *testing.T, viaProxy, useTLS bool) []string {
	dv := startDovecotZlib(t)
	direct := dv.Dial(t, testUser, testPass)
	for i := range 3 {
		appendMsg(t, direct, "INBOX", testMessage(fmt.Sprintf("seed %d", i)))
	}
	addr := dv.Addr
	if useTLS {
		addr = dv.TLSAddr
	}
	limit := ""
	if viaProxy {
		cert, key := writeCert(t, t.TempDir(), "idlemux-test")
		cfg := testConfig(dv.Addr)
		cfg.TLS = config.TLS{CertFile: cert, KeyFile: key}
		cfg.Listeners = append(cfg.Listeners, config.Listener{Address: "127.0.0.1:0", TLS: config.TLSImplicit, InsecureAuth: true})
		p := startProxy(t, cfg)
		addr = p.Addrs()[0]
		if useTLS {
			addr = p.Addrs()[1]
		}
		limit = fmt.Sprintf(" APPENDLIMIT=%d", cfg.Limits.AppendLimit)
	}
	var rc *rawConn
	if useTLS {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		rc = rawOver(t, c, err)
	} else {
		rc = dialRaw(t, addr)
	}
	lines := compressScript(t, rc, func() { appendMsg(t, direct, "INBOX", testMessage("pushed")) })
	for i, l := range lines {
		if !strings.HasPrefix(l, "c: * CAPABILITY ") && !strings.Contains(l, " OK [CAPABILITY ") {
			continue
		}
		head, list, _ := strings.Cut(l, "CAPABILITY ")
		list, tail, _ := strings.Cut(list, "]")
		if !strings.HasSuffix(list, " COMPRESS=DEFLATE"+limit) {
			t.Errorf("capabilities after login: got %q, want COMPRESS=DEFLATE%s last", list, limit)
		}
		lines[i] = head + "CAPABILITY (compared elsewhere)" + tail
	}
	return lines
}

// TestDovecotCompressCapabilities: after login idlemux lists what Dovecot
// with imap_zlib lists, COMPRESS=DEFLATE last, then APPENDLIMIT; before
// login neither lists it; with compress off in the config idlemux lists
// it nowhere and answers COMPRESS as Dovecot without imap_zlib does.
func TestDovecotCompressCapabilities(t *testing.T) {
	dz := startDovecotZlib(t)
	dv := startDovecot(t)
	on := testConfig(dv.Addr)
	off := testConfig(dv.Addr)
	off.Compress = false
	pOn, pOff := startProxy(t, on), startProxy(t, off)
	limit := fmt.Sprintf("APPENDLIMIT=%d", on.Limits.AppendLimit)
	capsOf := func(addr string) (before, after, compress string) {
		rc := dialRaw(t, addr)
		before = rc.cmd("a", "CAPABILITY")[0]
		rc.cmd("b", "LOGIN "+testUser+" "+testPass)
		after = rc.cmd("c", "CAPABILITY")[0]
		l := rc.cmd("d", "COMPRESS")
		compress = wireShape([]string{"c: " + l[len(l)-1]})[0]
		return before, after, compress
	}
	offered := func(list string) string {
		var keep []string
		for _, c := range strings.Fields(list) {
			if !strings.Contains(" "+strings.Join(notOfferedByIdlemux, " ")+" STARTTLS AUTH=LOGIN ", " "+c+" ") {
				keep = append(keep, c)
			}
		}
		return strings.Join(keep, " ")
	}
	zb, za, zc := capsOf(dz.Addr)
	db, da, dc := capsOf(dv.Addr)
	for _, tc := range []struct {
		name                     string
		addr                     string
		wantBefore, wantAfter, c string
	}{
		{"compress on, like imap_zlib", pOn.Addrs()[0], offered(zb), offered(za) + " " + limit, zc},
		{"compress off, like no imap_zlib", pOff.Addrs()[0], offered(db), offered(da) + " " + limit, dc},
	} {
		b, a, c := capsOf(tc.addr)
		if b != tc.wantBefore {
			t.Errorf("%s: before login got %q, want %q", tc.name, b, tc.wantBefore)
		}
		if a != tc.wantAfter {
			t.Errorf("%s: after login got %q, want %q", tc.name, a, tc.wantAfter)
		}
		if c != tc.c {
			t.Errorf("%s: COMPRESS without argument answered %q, want %q", tc.name, c, tc.c)
		}
	}
}

// countConn counts the bytes read from a connection.
type countConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// listingBytes logs in at addr, maybe turns COMPRESS on, and returns the
// header listing's lines and the bytes it moved on the wire.
func listingBytes(t *testing.T, addr string, compress bool) ([]string, int64) {
	c, err := net.Dial("tcp", addr)
	cc := &countConn{Conn: c}
	rc := rawOver(t, cc, err)
	rc.cmd("l", "LOGIN "+testUser+" "+testPass)
	if compress {
		if l := rc.cmd("z", "COMPRESS DEFLATE"); !strings.HasPrefix(l[len(l)-1], "z OK") {
			t.Fatalf("COMPRESS: got %q", l)
		}
		rc.compressed()
	}
	rc.cmd("s", "SELECT INBOX")
	before := cc.n.Load()
	lines := rc.cmd("f", "FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])")
	return lines, cc.n.Load() - before
}

// TestDovecotCompressHeaderListing (issue 12): a header listing of 500
// messages through idlemux moves at most 35% of its uncompressed bytes,
// and the client inflates the same lines it gets uncompressed. Dovecot's
// own compressed figure is logged beside it.
func TestDovecotCompressHeaderListing(t *testing.T) {
	dv := startDovecotZlib(t)
	direct := dv.Dial(t, testUser, testPass)
	for i := range 500 {
		msg := fmt.Sprintf("From: Sender %d <sender%d@example.org>\r\nTo: %s@example.org\r\nSubject: Report %d on the quarterly figures\r\nDate: Mon, %d Nov 2026 10:%02d:00 +0000\r\nMessage-ID: <%d.%d@example.org>\r\n\r\nbody %d\r\n",
			i%37, i%37, testUser, i, i%28+1, i%60, i*7919, i, i)
		appendMsg(t, direct, "INBOX", msg)
	}
	p := startProxy(t, testConfig(dv.Addr))
	plain, plainBytes := listingBytes(t, p.Addrs()[0], false)
	zipped, zBytes := listingBytes(t, p.Addrs()[0], true)
	_, dvBytes := listingBytes(t, dv.Addr, true)
	if len(plain) != 500*8+1 {
		t.Fatalf("uncompressed listing: got %d lines, want %d", len(plain), 500*8+1)
	}
	for i := range plain {
		// The first session to see a message is told it is \Recent.
		if w, g := strings.ReplaceAll(plain[i], `\Recent`, ""), strings.ReplaceAll(zipped[min(i, len(zipped)-1)], `\Recent`, ""); g != w {
			t.Fatalf("compressed listing, line %d: got %q, want %q (uncompressed)", i, g, w)
		}
	}
	if len(zipped) != len(plain) {
		t.Errorf("compressed listing: got %d lines, want %d", len(zipped), len(plain))
	}
	ratio := float64(zBytes) / float64(plainBytes)
	t.Logf("500-message header listing: %d bytes uncompressed, %d compressed through idlemux (%.1f%%), %d compressed by Dovecot directly (%.1f%%)",
		plainBytes, zBytes, 100*ratio, dvBytes, 100*float64(dvBytes)/float64(plainBytes))
	if ratio > 0.35 {
		t.Errorf("compressed listing: got %d bytes, %.1f%% of %d uncompressed, want at most 35%%", zBytes, 100*ratio, plainBytes)
	}
}
