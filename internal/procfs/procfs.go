// Package procfs reads the memory figures of Linux processes from /proc,
// for the load harness and the benchmarks that compare idlemux's memory
// with Dovecot's.
package procfs

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoField says the file has no line for the key (a zombie or a kernel
// thread has no VmRSS).
var ErrNoField = errors.New("no such field")

// KiB returns the value of the "key:  N kB" line of /proc/PID/file, for
// example ("status", "VmRSS") or ("smaps_rollup", "Pss"). A process that
// is gone, or exiting, gives an error wrapping fs.ErrNotExist.
func KiB(pid int, file, key string) (int64, error) {
	path := fmt.Sprintf("/proc/%d/%s", pid, file)
	f, err := os.Open(path)
	if errors.Is(err, syscall.ESRCH) { // an exiting process
		return 0, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != key+":" {
			continue
		}
		if len(fields) < 2 {
			return 0, fmt.Errorf("%s: malformed %q", path, sc.Text())
		}
		return strconv.ParseInt(fields[1], 10, 64)
	}
	if err := sc.Err(); errors.Is(err, syscall.ESRCH) {
		return 0, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	} else if err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: %s: %w", path, key, ErrNoField)
}
