package bench

import (
	"os"
	"strconv"
	"strings"

	"github.com/idlemux/idlemux/internal/procfs"
)

// memSample sums the memory of a set of processes. RSS counts every page a
// process maps, so forked processes sharing pages (Dovecot's one imap
// process per connection) are overcounted; PSS splits each shared page
// among its sharers and so sums to what the set really costs.
type memSample struct {
	RSSKiB, PSSKiB int
	Procs          int // processes whose memory could be read
}

// sampleMemory measures pids and every process whose /proc/PID/comm is
// comm (if comm is set), each process once, leaving out this process and
// exclude (the bench's workers, which share idlemux's name).
func sampleMemory(pids []int, comm string, exclude []int) memSample {
	skip := map[int]bool{os.Getpid(): true}
	for _, p := range exclude {
		skip[p] = true
	}
	seen := map[int]bool{}
	var all []int
	for _, p := range pids {
		if !seen[p] {
			seen[p] = true
			all = append(all, p)
		}
	}
	if comm != "" {
		for _, p := range procsNamed(comm) {
			if !seen[p] && !skip[p] {
				seen[p] = true
				all = append(all, p)
			}
		}
	}
	var m memSample
	for _, p := range all {
		rss, err := procfs.KiB(p, "status", "VmRSS")
		if err != nil {
			continue // gone, or a kernel thread
		}
		pss, _ := procfs.KiB(p, "smaps_rollup", "Pss")
		m.RSSKiB += int(rss)
		m.PSSKiB += int(pss)
		m.Procs++
	}
	return m
}

// procsNamed lists the processes whose command name is comm.
func procsNamed(comm string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && strings.TrimSpace(string(b)) == comm {
			pids = append(pids, p)
		}
	}
	return pids
}
