package procfs

import (
	"errors"
	"io/fs"
	"os"
	"testing"
)

func TestKiB(t *testing.T) {
	self := os.Getpid()
	for _, tt := range []struct {
		name      string
		pid       int
		file, key string
		want      error // nil: a positive value
	}{
		{"own RSS", self, "status", "VmRSS", nil},
		{"own PSS", self, "smaps_rollup", "Pss", nil},
		{"no such line", self, "status", "NoSuchKey", ErrNoField},
		{"no such process", 1 << 30, "status", "VmRSS", fs.ErrNotExist},
	} {
		n, err := KiB(tt.pid, tt.file, tt.key)
		switch {
		case tt.want == nil && (err != nil || n <= 0):
			t.Errorf("%s: got %d, %v; want a positive value", tt.name, n, err)
		case tt.want != nil && !errors.Is(err, tt.want):
			t.Errorf("%s: got %d, %v; want an error wrapping %v", tt.name, n, err, tt.want)
		}
	}
}
