package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the status goroutine and the test
// to use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// signalled returns a signal channel that already holds n SIGTERMs.
func signalled(n int) chan os.Signal {
	ch := make(chan os.Signal, 2)
	for range n {
		ch <- syscall.SIGTERM
	}
	return ch
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "idlemux.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// execute runs the command line with pre-queued signals.
func execute(t *testing.T, sigs chan os.Signal, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	if sigs == nil {
		sigs = signalled(0)
	}
	code = run(args, &out, &errOut, sigs)
	return code, out.String(), errOut.String()
}
