package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// yaml.v3 reports decode errors as "line N: ..." with Go type names, which
// tells an operator neither which key is wrong nor where in a list it sits.
// position records, for every key and list item in the document, its dotted
// path so those messages can be rewritten in terms of keys.
type position struct {
	path      string    // e.g. "listeners[1].tls"
	keyLine   int       // line of the key (or of the item, for list items)
	name      string    // the key itself; empty for list items
	valueLine int       // line the value node starts on
	valueKind yaml.Kind // kind of the value node, aliases resolved
	value     string    // the value itself, for scalars
}

// positions walks the document in data. It returns nil if data does not
// parse; the decoder reports that error itself.
func positions(data []byte) []position {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil
	}
	var out []position
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		// Aliases are recorded where they are used but not descended into:
		// yaml.v3 reports errors inside them at the anchor's lines, which
		// the anchor's own walk records, and not following them keeps
		// self-referencing or exponential aliases from hanging the walk.
		if n.Kind == yaml.AliasNode {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				r := resolveAlias(c)
				out = append(out, position{keyLine: c.Line, valueLine: r.Line, valueKind: r.Kind, value: r.Value})
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				r := resolveAlias(v)
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				out = append(out, position{path: p, keyLine: k.Line, name: k.Value, valueLine: r.Line, valueKind: r.Kind, value: r.Value})
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				r := resolveAlias(c)
				p := fmt.Sprintf("%s[%d]", path, i)
				out = append(out, position{path: p, keyLine: c.Line, valueLine: r.Line, valueKind: r.Kind, value: r.Value})
				walk(c, p)
			}
		}
	}
	walk(&doc, "")
	return out
}

// resolveAlias follows *anchor references, guarding against alias cycles.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// keyAt finds the key called name written on line.
func keyAt(ps []position, line int, name string) (position, bool) {
	for _, p := range ps {
		if p.keyLine == line && p.name == name {
			return p, true
		}
	}
	return position{}, false
}

// valueAt finds the document root, key or list item whose value of the
// given kind starts on line and whose Go type is goType. Block mappings start
// on the line of their first key and flow collections nest on one line, so
// kind and type together tell "listeners" (a mapping where a list belongs)
// from a key inside it.
func valueAt(ps []position, line int, kind yaml.Kind, goType string) (position, bool) {
	var first *position
	for i, p := range ps {
		if p.valueLine != line || p.valueKind != kind {
			continue
		}
		if typeAt(p.path) == goType {
			return p, true
		}
		if first == nil {
			first = &ps[i]
		}
	}
	if first != nil {
		return *first, true
	}
	return position{}, false
}

// typeAt returns the Go type name yaml.v3 would report for the raw field at
// path, or "" if path is not part of the schema.
func typeAt(path string) string {
	t := reflect.TypeOf(rawConfig{})
	for _, seg := range strings.FieldsFunc(path, func(r rune) bool { return r == '.' || r == '[' }) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if strings.HasSuffix(seg, "]") {
			if t.Kind() != reflect.Slice {
				return ""
			}
			t = t.Elem()
			continue
		}
		f, ok := fieldByKey(t, seg)
		if !ok {
			return ""
		}
		t = f.Type
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeOf(intValue(0)) {
		return "int" // intValue reports itself as int
	}
	return t.String()
}

// fieldByKey finds the struct field tagged with the YAML key.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name == key {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}
