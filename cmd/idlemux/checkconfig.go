package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/proxy"
)

// runCheckConfig validates a config file without serving, for CI and for
// checking an edit before a restart. Every problem is printed, one a line.
// With --explain it first prints each upstream's effective settings.
func runCheckConfig(args []string, stdout, stderr io.Writer) int {
	args, explain := takeExplain(args)
	cfg, path, code, ok := loadConfig("check-config", args, stderr)
	if !ok {
		return code
	}
	// proxy.New checks what the proxy itself needs, without the network;
	// Shutdown then stops the housekeeping it started.
	srv, err := proxy.New(cfg, zap.NewNop())
	if err != nil {
		fmt.Fprintf(stderr, "config %s: %v\n", path, err)
		return exitFailure
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	srv.Shutdown(ctx) //nolint:errcheck // nothing was started that could fail to stop

	if explain {
		explainUpstreams(stdout, cfg)
	}
	fmt.Fprintln(stdout, "ok")
	return exitOK
}
