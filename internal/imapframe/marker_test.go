package imapframe

import "testing"

func TestLiteralMarker(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		want  Literal
		start int
		ok    bool
	}{
		{"sync", "a LOGIN {5}", Literal{Size: 5, Valid: true}, 8, true},
		{"non-sync", "a CREATE {5000+}", Literal{Size: 5000, NonSync: true, Valid: true}, 9, true},
		{"literal8", "a APPEND x ~{12}", Literal{Size: 12, Binary: true, Valid: true}, 11, true},
		{"literal8 non-sync", "a APPEND x ~{12+}", Literal{Size: 12, Binary: true, NonSync: true, Valid: true}, 11, true},
		{"max size", "* 1 FETCH (BODY[] {4294967295}", Literal{Size: 4294967295, Valid: true}, 18, true},
		{"past 2^32-1", "a LOGIN {4294967296}", Literal{}, 8, true},
		{"eleven digits", "a LOGIN {00000000001}", Literal{}, 8, true},
		{"empty braces", "a LOGIN {}", Literal{}, 8, true},
		{"plus only", "a LOGIN {+}", Literal{NonSync: true}, 8, true},
		{"not a number", "a LOGIN {x}", Literal{}, 0, false},
		{"no brace", "a NOOP", Literal{}, 0, false},
		{"quoted", `a LOGIN "{5}"`, Literal{}, 0, false},
		{"bare", "{5}", Literal{Size: 5, Valid: true}, 0, true},
		{"short", "}", Literal{}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, start, ok := LiteralMarker([]byte(tt.line))
			if ok != tt.ok || got != tt.want || (ok && start != tt.start) {
				t.Fatalf("LiteralMarker(%q) = %+v, %d, %v; want %+v, %d, %v", tt.line, got, start, ok, tt.want, tt.start, tt.ok)
			}
		})
	}
}

func FuzzLiteralMarker(f *testing.F) {
	for _, s := range []string{"a {5}", "{4294967295+}", "~{1}", "}", "{}", "a\"{5}\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		lit, start, ok := LiteralMarker(line)
		if !ok {
			return
		}
		if start < 0 || start >= len(line) || line[len(line)-1] != '}' {
			t.Fatalf("LiteralMarker(%q): start %d out of the line", line, start)
		}
		if lit.Valid && lit.Size > 1<<32-1 {
			t.Fatalf("LiteralMarker(%q): size %d past 2^32-1", line, lit.Size)
		}
	})
}
