package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a config, tied to the YAML key it is about.
type Problem struct {
	Key     string // e.g. "listeners[1].tls"; empty only for YAML syntax errors
	Line    int    // 1-based line in the file when known, else 0
	Message string
}

// String renders "key: message (line N)".
func (p Problem) String() string {
	var b strings.Builder
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", p.Line)
	}
	return b.String()
}

// Error carries every problem found in one config, so callers such as
// `idlemux check-config` can list them all.
type Error struct {
	File     string // path given to Load; empty for Parse
	Problems []Problem
}

// Error renders one problem on one line, several as an indented list.
func (e *Error) Error() string {
	prefix := "config"
	if e.File != "" {
		prefix = "config " + e.File
	}
	if len(e.Problems) == 1 {
		return prefix + ": " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems:", prefix, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// problems collects Problems during decoding and validation.
type problems struct {
	list []Problem
}

func (ps *problems) add(key, format string, args ...any) {
	ps.list = append(ps.list, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}
