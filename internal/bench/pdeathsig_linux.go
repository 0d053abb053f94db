package bench

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel SIGKILL the worker when the thread that
// started it exits. Go threads only exit with a goroutine locked to them,
// which the bench never does, so in practice this is the parent's death;
// a worker also exits on EOF on its stdin, which covers the rest.
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
