package proxy

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"net"
	"testing"

	kflate "github.com/klauspost/compress/flate"
	"go.uber.org/zap"
)

// chunkConn is a net.Conn whose reads return the bytes in chunks of the
// sizes given (cycled), as a network delivers them; it takes no writes.
type chunkConn struct {
	net.Conn
	data  []byte
	sizes []byte
	i     int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.i%len(c.sizes)]) + 1
		c.i++
	}
	n = copy(p[:min(n, len(p))], c.data)
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkConn) Close() error { return nil }

// FuzzInflateReader feeds the client-side bytes of a compressed session
// (anything at all) to deflateConn's reading path, delivered in arbitrary
// chunks and read into arbitrary buffers: it never panics, it gives
// exactly what its inflater gives for the stream read whole, and it ends
// as that one does; and where Go's own inflater finds no corruption, the
// two give the same bytes.
func FuzzInflateReader(f *testing.F) {
	compress := func(parts ...string) []byte {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, 5)
		for _, p := range parts {
			w.Write([]byte(p))
			w.Flush()
		}
		return b.Bytes()
	}
	f.Add(compress("a NOOP\r\n", "b SELECT INBOX\r\n", "c IDLE\r\n", "DONE\r\n"), []byte{0, 3, 200}, uint8(7))
	f.Add(appendStored(nil, []byte("a LOGOUT\r\n")), []byte{}, uint8(0))
	f.Add(compress("x APPEND INBOX {5+}\r\nhello\r\n"), []byte{1}, uint8(255))
	f.Add([]byte{0xff, 0xff, 0xff}, []byte{0}, uint8(1))
	f.Add(append(compress("a NOOP\r\n"), 0x01, 0x00), []byte{9}, uint8(2))
	f.Fuzz(func(t *testing.T, stream, sizes []byte, readSize uint8) {
		// The reference: the same inflater reading the stream whole.
		want, wantErr := io.ReadAll(kflate.NewReaderOpts(bytes.NewReader(stream), kflate.WithPartialBlock()))
		d := newDeflateConn(&chunkConn{data: stream, sizes: sizes}, nil, zap.NewNop())
		var got []byte
		p := make([]byte, int(readSize)+1)
		var err error
		for len(got) <= len(want)+len(p) {
			var n int
			n, err = d.Read(p)
			got = append(got, p[:n]...)
			if err != nil {
				break
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("inflated %q, want %q (read whole, error %v)", got, want, wantErr)
		}
		// A stream cut short is a connection that ended (EOF); one that
		// does not inflate ends the session as corrupt.
		var ce kflate.CorruptInputError
		if corrupt := errors.As(wantErr, &ce); corrupt != errors.Is(err, errCorruptStream) || !corrupt && err != io.EOF {
			t.Fatalf("ended with %v; read whole, with %v", err, wantErr)
		}
		// Where Go's own inflater finds no corruption, both agree.
		std, stdErr := io.ReadAll(flate.NewReader(bytes.NewReader(stream)))
		var sce flate.CorruptInputError
		if !errors.As(stdErr, &sce) && !bytes.Equal(std, want) {
			t.Fatalf("inflated %q; Go's inflater %q (error %v)", want, std, stdErr)
		}
	})
}
