package config

import (
	"fmt"
	"os"
)

// Parse decodes and validates a YAML config. On failure the error is an
// *Error listing every problem found. Relative file paths in the config
// (tls.cert_file, upstream.ca_file, ...) are checked relative to the
// working directory.
func Parse(data []byte) (*Config, error) {
	return parse(data, "")
}

// Load reads and parses the config file at path. A file that cannot be read
// yields an error naming the path; an invalid one an *Error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err) // *fs.PathError names the path
	}
	return parse(data, path)
}

func parse(data []byte, file string) (*Config, error) {
	d := decode(data)
	all := d.problems
	cfg := Default()
	if !d.fatal {
		var ps problems
		validate(&d.raw, cfg, &ps)
		for _, p := range ps.list {
			if !isCovered(p.Key, d.covered) {
				all = append(all, p)
			}
		}
	}
	if len(all) > 0 {
		return nil, &Error{File: file, Problems: all}
	}
	return cfg, nil
}
