package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestShippedExamplesLoad keeps configs/*.yaml valid. Secret files they
// point at (tokens, passwords) exist only on a real host: a missing one is
// the only problem allowed.
func TestShippedExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				return
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want it to load", err)
			}
			for _, p := range ce.Problems {
				if !strings.HasSuffix(p.Key, "_file") || !strings.Contains(p.Message, "no such file") {
					t.Errorf("got problem %s: %s, want it to load", p.Key, p.Message)
				}
			}
		})
	}
}
