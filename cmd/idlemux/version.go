package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/idlemux/idlemux/proxy"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// The proxy answers ID (RFC 2971) with the build's version.
func init() { proxy.Version = version }

func runVersion(args []string, stdout, stderr io.Writer) int {
	if code, ok := parseFlags(newFlagSet("version", "version", stderr), args); !ok {
		return code
	}
	fmt.Fprintf(stdout, "idlemux %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
