package config

import (
	"path/filepath"
	"testing"
)

// TestShippedExamplesLoad keeps configs/*.yaml valid.
func TestShippedExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatalf("got %v, want it to load", err)
			}
		})
	}
}
