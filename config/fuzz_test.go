package config

import "testing"

// FuzzParse checks that no input makes Parse panic, and that it returns
// either a config or an error, never both or neither.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", "null", "[]", "- a", "{}", "hello", "listeners: 5", "{{{", "a: &a [*a]",
		base, base + "  idle_refersh: 1m\n", "listeners:\n  - &l {address: 127.0.0.1:1}\n  - *l\n",
		"upstream: &u {address: a:1}\nlisteners: [{address: 127.0.0.1:1}]\nfanout: *u\n",
		"listeners:\n- address: 127.0.0.1:1\n  address: 127.0.0.1:2\n", "---\n---\n", "\t", "%YAML 1.1\n---\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse(%q) = %v, %v: want exactly one of config and error", data, c, err)
		}
	})
}
