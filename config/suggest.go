package config

import (
	"reflect"
	"strings"
)

// rawTypes maps the type names yaml.v3 puts in "field X not found in type T"
// to the structs, so an unknown key can be matched against the valid ones.
var rawTypes = map[string]reflect.Type{
	"config.rawConfig":        reflect.TypeOf(rawConfig{}),
	"config.rawListener":      reflect.TypeOf(rawListener{}),
	"config.rawTLS":           reflect.TypeOf(rawTLS{}),
	"config.rawUpstream":      reflect.TypeOf(rawUpstream{}),
	"config.rawNamedUpstream": reflect.TypeOf(rawNamedUpstream{}),
	"config.rawLog":           reflect.TypeOf(rawLog{}),
	"config.rawFanout":        reflect.TypeOf(rawFanout{}),
	"config.rawMetrics":       reflect.TypeOf(rawMetrics{}),
	"config.rawLimits":        reflect.TypeOf(rawLimits{}),
	"config.rawAuth":          reflect.TypeOf(rawAuth{}),
	"config.rawMappedUser":    reflect.TypeOf(rawMappedUser{}),
}

// suggest returns ` (did you mean "x"?)` when a known key of typeName is a
// likely typo of name, else "". Typos such as idle_refersh are the usual
// reason for an unknown key, and the fix is obvious once named.
func suggest(name, typeName string) string {
	t, ok := rawTypes[typeName]
	if !ok {
		return ""
	}
	best, bestDist := "", 3 // at most two edits away
	for _, key := range yamlKeys(t) {
		if d := editDistance(strings.ToLower(name), key); d < bestDist {
			best, bestDist = key, d
		}
	}
	if best == "" {
		return ""
	}
	return ` (did you mean "` + best + `"?)`
}

// yamlKeys lists the keys of a raw struct, those of inlined structs
// (rawNamedUpstream's rawUpstream) included.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		key, opts, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if opts == "inline" {
			keys = append(keys, yamlKeys(t.Field(i).Type)...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
