package config

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// intValue is an int that only accepts YAML integers. Plain int fields let
// yaml.v3 truncate 1.5 to 1, silently changing what the operator wrote.
type intValue int

// UnmarshalYAML rejects anything but an !!int scalar. It reports the
// mismatch as a *yaml.TypeError, in yaml.v3's own wording, so decoding
// continues and the problem is keyed like every other type error.
func (v *intValue) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		value := ""
		if n.Kind == yaml.ScalarNode {
			value = " `" + n.Value + "`"
		}
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal %s%s into int", n.Line, n.ShortTag(), value)}}
	}
	var i int
	if err := n.Decode(&i); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal !!int `%s` into int", n.Line, n.Value)}}
	}
	*v = intValue(i)
	return nil
}
