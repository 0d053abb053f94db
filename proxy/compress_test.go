package proxy

import (
	"bufio"
	"compress/flate"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
)

// pipePair is a deflateConn on one end of a loopback TCP connection and a
// compressing client on the other.
func pipePair(t *testing.T) (*deflateConn, *zClientConn, *bufio.Reader) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	zw, _ := flate.NewWriter(c, 5)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	s.SetDeadline(time.Now().Add(5 * time.Second))
	return newDeflateConn(s, nil, zap.NewNop()), &zClientConn{Conn: c, zw: zw}, bufio.NewReader(flate.NewReader(c))
}

// TestDeflateConnRoundTrips: commands a client compresses reach the
// reader inflated, one at a time, and each answer reaches the client whole
// at once (a stored block, or compressed, each with its sync flush).
func TestDeflateConnRoundTrips(t *testing.T) {
	d, c, r := pipePair(t)
	for i, line := range []string{"a NOOP\r\n", "b COMPRESS FOO\r\n", "c LOGOUT\r\n"} {
		if _, err := io.WriteString(c, line); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		p := make([]byte, 100)
		n, err := d.Read(p)
		if got := string(p[:n]); err != nil || got != line {
			t.Fatalf("command %d: server read %q, %v, want %q", i, got, err, line)
		}
		if _, err := d.Write([]byte("* reply " + line)); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != "* reply "+line {
			t.Fatalf("reply %d: got %q, %v", i, got, err)
		}
	}
}
