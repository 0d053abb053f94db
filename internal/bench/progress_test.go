package bench

import "testing"

func TestBar(t *testing.T) {
	for _, tt := range []struct {
		done, total int
		want        string
	}{
		{0, 10, "[------------------------]   0%"},
		{5, 10, "[############------------]  50%"},
		{10, 10, "[########################] 100%"},
		{12, 10, "[########################] 100%"},
		{1, 0, "[########################] 100%"},
	} {
		if got := bar(tt.done, tt.total); got != tt.want {
			t.Errorf("bar(%d, %d): got %q, want %q", tt.done, tt.total, got, tt.want)
		}
	}
}
