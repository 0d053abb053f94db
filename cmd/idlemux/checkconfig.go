package main

import (
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/proxy"
)

// runCheckConfig validates a config file without serving, for CI and for
// checking an edit before a restart. Every problem is printed, one a line.
func runCheckConfig(args []string, stdout, stderr io.Writer) int {
	cfg, path, code, ok := loadConfig("check-config", args, stderr)
	if !ok {
		return code
	}
	// proxy.New checks what the proxy itself needs, without the network.
	if _, err := proxy.New(cfg, zap.NewNop()); err != nil {
		fmt.Fprintf(stderr, "config %s: %v\n", path, err)
		return exitFailure
	}
	fmt.Fprintln(stdout, "ok")
	return exitOK
}
