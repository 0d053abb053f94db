package config

import "testing"

// BenchmarkParse measures a typical config; check-config and startup are
// the only callers, so this guards against pathological slowdowns only.
func BenchmarkParse(b *testing.B) {
	data := []byte(base + "  tls: starttls\n  idle_refresh: 20m\n  capabilities: [IMAP4rev1, IDLE, MOVE]\nlog:\n  level: debug\nfanout:\n  max_lag: 500\n")
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseWithProblems covers the slower path that maps yaml.v3 errors
// back onto keys.
func BenchmarkParseWithProblems(b *testing.B) {
	data := []byte(base + "  idle_refersh: 20m\n  max_connections_per_account: many\n")
	for b.Loop() {
		if _, err := Parse(data); err == nil {
			b.Fatal("want an error")
		}
	}
}
