package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/idlemux/idlemux/config"
)

const usage = `usage: idlemux <command> [flags]

commands:
  demo [--listen ADDR] [--every DURATION]
                                run a self-contained demo: an in-process IMAP server
                                (demo/demo) behind the proxy on 127.0.0.1:1143
  serve --config FILE           run the proxy
  check-config --config FILE [--explain]
                                validate a config file, print "ok" or every problem;
                                --explain prints each upstream's effective settings
  version                       print the version
  bench --proxy ADDR --user U --password P --upstream ADDR [--clients N] [--messages M] [--workers N] [--tls] [--json]
                                load harness: N clients IDLE through idlemux, M messages
                                appended upstream, EXISTS latency per client (loopback only)
`

// newFlagSet returns a flag set whose errors and -h output go to stderr,
// followed by the command's usage line.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: idlemux %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and rejects stray positional arguments. ok is
// false when the command should exit with code.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "idlemux %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	return 0, true
}

// configFlag parses the --config flag shared by serve and check-config.
func configFlag(name string, args []string, stderr io.Writer) (path string, code int, ok bool) {
	fs := newFlagSet(name, name+" --config FILE", stderr)
	fs.StringVar(&path, "config", "", "path to the YAML config `FILE`")
	if code, ok := parseFlags(fs, args); !ok {
		return "", code, false
	}
	if path == "" {
		fmt.Fprintf(stderr, "idlemux %s: --config is required\n", name)
		fs.Usage()
		return "", exitUsage, false
	}
	return path, 0, true
}

// loadConfig parses --config for command name and loads the file, printing
// every problem; ok is false when the command must exit with code.
func loadConfig(name string, args []string, stderr io.Writer) (cfg *config.Config, path string, code int, ok bool) {
	path, code, ok = configFlag(name, args, stderr)
	if !ok {
		return nil, "", code, false
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, "", exitFailure, false
	}
	return cfg, path, 0, true
}
