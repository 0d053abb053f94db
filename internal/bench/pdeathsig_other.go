//go:build !linux

package bench

import "os/exec"

// dieWithParent has no portable equivalent of Linux's Pdeathsig: a worker
// still exits on EOF on its stdin, which the parent's death causes.
func dieWithParent(*exec.Cmd) {}
