package config

import (
	"testing"
)

// TestCacheKeys: the cache section's keys, defaults and the problems each
// bad value reports under its own key.
func TestCacheKeys(t *testing.T) {
	base := "listeners:\n  - address: 127.0.0.1:1143\nupstream:\n  address: imap.example.com:993\n"
	tests := []struct {
		name    string
		yaml    string
		want    Cache
		wantErr string
	}{
		{"default", base, Cache{Enabled: true, MaxBytes: 64 << 20, MaxMessageBytes: 256 << 10}, ""},
		{"set", base + "cache:\n  enabled: false\n  max_bytes: 1048576\n  max_message_bytes: 4096\n", Cache{MaxBytes: 1 << 20, MaxMessageBytes: 4096}, ""},
		{"zero max_bytes", base + "cache:\n  max_bytes: 0\n", Cache{}, "cache.max_bytes"},
		{"fraction", base + "cache:\n  max_bytes: 1.5\n", Cache{}, "cache.max_bytes"},
		{"item above the whole", base + "cache:\n  max_bytes: 1000\n", Cache{}, "cache.max_message_bytes"},
		{"huge item", base + "cache:\n  max_bytes: 9000000000\n  max_message_bytes: 4294967296\n", Cache{}, "cache.max_message_bytes"},
		{"unknown key", base + "cache:\n  max_byte: 10\n", Cache{}, "cache.max_byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := parseWant(t, tt.yaml, tt.wantErr)
			if !ok {
				return
			}
			if c.Cache != tt.want {
				t.Fatalf("got cache %+v, want %+v", c.Cache, tt.want)
			}
		})
	}
}
