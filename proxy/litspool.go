package proxy

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// litSpoolMem is how much of an APPEND literal is kept in memory before
// the rest goes to a temporary file.
const litSpoolMem = 64 << 10

// litSpool holds an APPEND literal received from the client before the
// command reaches imapserver, so the upstream connection that stores it is
// taken only once the whole message is here: a client that stalls mid-way
// pins nothing upstream. Small messages stay in memory, larger ones go to
// an unlinked-on-close temporary file; the size is bounded by the
// append_limit the reader enforces before spooling.
type litSpool struct {
	mem      []byte
	file     *os.File
	rd       io.Reader
	reserved int64
}

// maxAppendSpooled bounds the APPEND literals being received at once, all
// connections together: each is up to append_limit and may take as long
// as imapserver's literal timeout.
const maxAppendSpooled = 1 << 30

var appendSpooled atomic.Int64

// newLitSpool reserves size bytes of the shared budget; nil when it is
// spent.
func newLitSpool(size uint64) *litSpool {
	n := int64(size)
	if appendSpooled.Add(n) > maxAppendSpooled {
		appendSpooled.Add(-n)
		return nil
	}
	return &litSpool{reserved: n}
}

func (s *litSpool) Write(p []byte) (int, error) {
	if s.file == nil {
		room := litSpoolMem - len(s.mem)
		if len(p) <= room {
			s.mem = append(s.mem, p...)
			return len(p), nil
		}
		f, err := os.CreateTemp("", "idlemux-append-")
		if err != nil {
			return 0, fmt.Errorf("spooling APPEND literal: %w", err)
		}
		s.file = f
		s.mem = append(s.mem, p[:room]...)
		n, err := s.file.Write(p[room:])
		return room + n, err
	}
	return s.file.Write(p)
}

// reader returns the spooled bytes from the start.
func (s *litSpool) reader() (io.Reader, error) {
	if s.rd != nil {
		return s.rd, nil
	}
	if s.file == nil {
		s.rd = bytes.NewReader(s.mem)
		return s.rd, nil
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("spooled APPEND literal: %w", err)
	}
	s.rd = io.MultiReader(bytes.NewReader(s.mem), s.file)
	return s.rd, nil
}

// Close removes the temporary file, if any, and gives back the budget.
func (s *litSpool) Close() {
	if s == nil {
		return
	}
	appendSpooled.Add(-s.reserved)
	s.reserved = 0
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
		s.file = nil
	}
	s.mem = nil
}
