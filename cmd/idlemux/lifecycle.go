package main

import (
	"context"
	"os"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/proxy"
)

// shutdownTimeout bounds the graceful shutdown: long enough to say BYE and
// LOGOUT upstream, short enough for service managers' stop timeouts.
// serve sets it from the config's shutdown_timeout.
var shutdownTimeout = config.Default().ShutdownTimeout

// proxyServer is the part of *proxy.Server the commands use; tests fake it.
type proxyServer interface {
	Start() error
	Addrs() []string
	Stats() proxy.Stats
	Shutdown(ctx context.Context) error
}

var _ proxyServer = (*proxy.Server)(nil)

// duplicateSignalWindow: a signal this soon after the first is the same
// event delivered twice, not an impatient operator. `timeout` signals its
// whole process group and GNU make also forwards SIGTERM to its children,
// so `timeout 5 make run` delivers two SIGTERMs within microseconds.
const duplicateSignalWindow = 100 * time.Millisecond

// awaitShutdown blocks until a signal arrives, then shuts srv down within
// shutdownTimeout. A second signal during shutdown returns at once with
// forced set, for the operator who does not want to wait; callers then skip
// any further cleanup.
func awaitShutdown(srv proxyServer, sigs <-chan os.Signal, log *zap.Logger) (code int, forced bool) {
	return awaitShutdownWith(srv, sigs, log, func() { reload(srv, log) })
}

// awaitShutdownWith is awaitShutdown with onHUP run for each SIGHUP before
// the shutdown signal.
func awaitShutdownWith(srv proxyServer, sigs <-chan os.Signal, log *zap.Logger, onHUP func()) (code int, forced bool) {
	sig := <-sigs
	for sig == syscall.SIGHUP {
		onHUP()
		sig = <-sigs
	}
	first := time.Now()
	log.Info("shutting down; signal again to exit immediately", zap.Stringer("signal", sig), zap.Duration("timeout", shutdownTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Error("shutdown incomplete", zap.Error(err))
				return exitFailure, false
			}
			log.Info("stopped")
			return exitOK, false
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				continue // no reload while shutting down
			}
			if time.Since(first) < duplicateSignalWindow {
				log.Debug("ignoring duplicate signal", zap.Stringer("signal", sig))
				continue
			}
			log.Warn("second signal: exiting without waiting for shutdown", zap.Stringer("signal", sig))
			return exitFailure, true
		}
	}
}

// reloader is implemented by servers that can reload certificates.
type reloader interface{ Reload() error }

// reload handles SIGHUP: certificates are read again without dropping any
// session; on error the old ones stay in use.
func reload(srv proxyServer, log *zap.Logger) {
	r, ok := srv.(reloader)
	if !ok {
		return
	}
	if err := r.Reload(); err != nil {
		log.Error("reload failed; keeping the previous certificates", zap.Error(err))
		return
	}
	log.Info("certificates reloaded")
}
