// Command idlemux is an IDLE-aware IMAP proxy: many clients watching the
// same mailbox share one upstream IDLE connection.
//
// Usage:
//
//	idlemux demo                        self-contained demo on 127.0.0.1:1143
//	idlemux serve --config FILE         run the proxy
//	idlemux check-config --config FILE [--explain]  validate a config file
//	idlemux version                     print the version
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	// Signals are caught from the start so that Ctrl-C during startup still
	// gets a graceful shutdown; the buffer holds the second one that forces
	// an immediate exit.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, sigs))
}

// run dispatches a subcommand and returns the process exit code. It takes
// its outputs and signal source as arguments so tests can drive it.
func run(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "demo":
		return runDemo(rest, stdout, stderr, sigs)
	case "serve":
		return runServe(rest, stderr, sigs)
	case "check-config":
		return runCheckConfig(rest, stdout, stderr)
	case "version":
		return runVersion(rest, stdout, stderr)
	case "bench":
		return runBench(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "idlemux: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}
