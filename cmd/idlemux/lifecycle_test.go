package main

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/proxy"
)

// fakeServer records Shutdown calls; Shutdown blocks until release is
// closed or its context ends.
type fakeServer struct {
	stats    proxy.Stats
	deadline chan time.Time
	release  chan struct{}
	err      error
}

func newFakeServer() *fakeServer {
	return &fakeServer{deadline: make(chan time.Time, 1), release: make(chan struct{})}
}

func (f *fakeServer) Start() error       { return nil }
func (f *fakeServer) Addrs() []string    { return []string{"127.0.0.1:1143"} }
func (f *fakeServer) Stats() proxy.Stats { return f.stats }
func (f *fakeServer) Shutdown(ctx context.Context) error {
	d, _ := ctx.Deadline()
	f.deadline <- d
	select {
	case <-f.release:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestAwaitShutdown(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
	}{
		{"clean shutdown", nil, exitOK},
		{"shutdown error", errors.New("sessions still open"), exitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer()
			srv.err = tt.err
			close(srv.release)
			start := time.Now()
			got, forced := awaitShutdown(srv, signalled(1), zap.NewNop())
			if got != tt.wantCode || forced {
				t.Errorf("got exit code %d forced %v, want %d false", got, forced, tt.wantCode)
			}
			d := <-srv.deadline
			if got := d.Sub(start); got < shutdownTimeout-time.Second || got > shutdownTimeout+time.Second {
				t.Errorf("shutdown deadline: got %v from now, want about %v", got, shutdownTimeout)
			}
		})
	}
}

func TestSecondSignalExitsImmediately(t *testing.T) {
	srv := newFakeServer()
	defer close(srv.release)
	sigs := signalled(1)
	type result struct {
		code   int
		forced bool
	}
	done := make(chan result, 1)
	go func() {
		code, forced := awaitShutdown(srv, sigs, zap.NewNop())
		done <- result{code, forced}
	}()
	<-srv.deadline // Shutdown is now blocked
	select {
	case r := <-done:
		t.Fatalf("returned %+v before the second signal, want it to wait for Shutdown", r)
	case <-time.After(2 * duplicateSignalWindow):
	}
	sigs <- syscall.SIGINT
	select {
	case r := <-done:
		if r.code != exitFailure || !r.forced {
			t.Errorf("got exit code %d forced %v, want %d true", r.code, r.forced, exitFailure)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting 5s after the second signal, want an immediate return")
	}
}

// Two signals at once are one event delivered twice (process group plus a
// forwarding parent) and must not skip the graceful shutdown.
func TestDuplicateSignalIsIgnored(t *testing.T) {
	srv := newFakeServer()
	sigs := signalled(2)
	type result struct {
		code   int
		forced bool
	}
	done := make(chan result, 1)
	go func() {
		code, forced := awaitShutdown(srv, sigs, zap.NewNop())
		done <- result{code, forced}
	}()
	<-srv.deadline
	time.Sleep(2 * duplicateSignalWindow) // let the duplicate be read, and ignored
	close(srv.release)
	if r := <-done; r.code != exitOK || r.forced {
		t.Errorf("got exit code %d forced %v, want %d false", r.code, r.forced, exitOK)
	}
}
