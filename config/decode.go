package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoded is the outcome of stage one.
type decoded struct {
	raw      rawConfig
	problems []Problem
	// covered are keys (and everything under them) whose problems were
	// already reported by the decoder; validation problems about them would
	// only repeat the same mistake as "required" or similar.
	covered []string
	// fatal means the document could not be mapped onto keys at all, so
	// validating what was decoded would produce noise only.
	fatal bool
}

var (
	reLine       = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	reUnmarshal  = regexp.MustCompile("^cannot unmarshal (\\S+)(?: `(.*)`)? into (.+)$")
	reNotFound   = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	reDuplicated = regexp.MustCompile(`^mapping key (".*") already defined at line (\d+)$`)
)

// decode strictly decodes data into a rawConfig. Unknown keys, type
// mismatches and duplicate keys all become Problems naming the key.
func decode(data []byte) decoded {
	var d decoded
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&d.raw)
	if errors.Is(err, io.EOF) {
		return d // empty document: validation reports what is missing
	}
	var te *yaml.TypeError
	if err != nil && !errors.As(err, &te) {
		d.problems = append(d.problems, syntaxProblem(err))
		d.fatal = true
		return d
	}
	if te != nil {
		ps := positions(data)
		for _, msg := range te.Errors {
			d.addTypeError(ps, msg)
		}
	}
	d.checkSingleDocument(dec)
	return d
}

// checkSingleDocument rejects a second document with content: idlemux
// would silently ignore it, and it is usually a botched merge. Empty
// documents (a trailing "---") are harmless.
func (d *decoded) checkSingleDocument(dec *yaml.Decoder) {
	for {
		var extra yaml.Node
		err := dec.Decode(&extra)
		switch {
		case errors.Is(err, io.EOF):
			return
		case err != nil:
			d.problems = append(d.problems, syntaxProblem(err))
			d.fatal = true
			return
		case isEmptyDocument(&extra):
			continue
		}
		d.problems = append(d.problems, Problem{Line: extra.Line, Message: "only one YAML document is allowed"})
		return
	}
}

func isEmptyDocument(n *yaml.Node) bool {
	if len(n.Content) == 0 {
		return true
	}
	c := n.Content[0]
	return len(n.Content) == 1 && c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null"
}

// syntaxProblem turns "yaml: line 3: ..." into a Problem with a line.
func syntaxProblem(err error) Problem {
	msg := err.Error()
	if m := reLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Line: line, Message: "invalid YAML: " + m[2]}
	}
	return Problem{Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// addTypeError rewrites one yaml.v3 TypeError line in terms of keys.
func (d *decoded) addTypeError(ps []position, msg string) {
	line := 0
	if m := reLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if m := reNotFound.FindStringSubmatch(msg); m != nil {
		if p, ok := keyAt(ps, line, m[1]); ok {
			d.problems = append(d.problems, Problem{Key: p.path, Line: line, Message: "unknown key" + suggest(m[1], m[2])})
			return
		}
	}
	if m := reDuplicated.FindStringSubmatch(msg); m != nil {
		name, _ := strconv.Unquote(m[1])
		if p, ok := keyAt(ps, line, name); ok {
			d.problems = append(d.problems, Problem{Key: p.path, Line: line, Message: "duplicate key, first set on line " + m[2]})
			// yaml.v3 skips a mapping with duplicate keys entirely.
			d.cover(parentPath(p.path))
			return
		}
	}
	if m := reUnmarshal.FindStringSubmatch(msg); m != nil {
		if p, ok := valueAt(ps, line, kindOfTag(m[1]), m[3]); ok {
			msg := fmt.Sprintf("must be %s, got %s", describeType(m[3]), describeValue(m[1], p.value))
			if p.path == "" {
				msg = "the top level " + msg
			}
			d.problems = append(d.problems, Problem{Key: p.path, Line: line, Message: msg})
			d.cover(p.path)
			return
		}
	}
	d.problems = append(d.problems, Problem{Line: line, Message: msg})
	d.fatal = true
}

// cover marks path as already reported. yaml.v3 drops a list item that
// fails to decode, shifting the indexes of later items, so a problem inside
// a list item covers the whole list.
func (d *decoded) cover(path string) {
	for strings.HasSuffix(path, "]") {
		path = parentPath(path)
	}
	d.covered = append(d.covered, path)
}

// parentPath strips the last ".key" or "[i]" from path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// isCovered reports whether key is, or lies under, one of covered.
func isCovered(key string, covered []string) bool {
	for _, c := range covered {
		if c == "" || key == c || strings.HasPrefix(key, c+".") || strings.HasPrefix(key, c+"[") {
			return true
		}
	}
	return false
}

func kindOfTag(tag string) yaml.Kind {
	switch tag {
	case "!!map":
		return yaml.MappingNode
	case "!!seq":
		return yaml.SequenceNode
	}
	return yaml.ScalarNode
}

// describeType names a Go type the way a YAML author thinks of it.
func describeType(goType string) string {
	switch {
	case goType == "int":
		return "an integer"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case goType == "[]string":
		return "a list of strings"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "config.raw"):
		return "a mapping"
	}
	return goType
}

func describeValue(tag, value string) string {
	switch tag {
	case "!!map":
		return "a mapping"
	case "!!seq":
		return "a list"
	}
	if len(value) > 40 {
		value = value[:37] + "..."
	}
	if tag == "!!str" {
		return strconv.Quote(value)
	}
	return value
}
