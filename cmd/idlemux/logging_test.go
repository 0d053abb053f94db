package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/idlemux/idlemux/config"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		name      string
		cfg       config.Log
		wantDebug bool
		wantJSON  bool
	}{
		{"json info", config.Log{Level: "info", Format: "json"}, false, true},
		{"json debug", config.Log{Level: "debug", Format: "json"}, true, true},
		{"console warn", config.Log{Level: "warn", Format: "console"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, _, err := newLogger(tt.cfg, &buf)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("debug line")
			log.Error("error line")
			out := buf.String()
			if got := strings.Contains(out, "debug line"); got != tt.wantDebug {
				t.Errorf("debug line logged: got %v, want %v\n%s", got, tt.wantDebug, out)
			}
			if !strings.Contains(out, "error line") {
				t.Errorf("error line: got missing, want logged\n%s", out)
			}
			last := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
			if got := json.Valid([]byte(last)); got != tt.wantJSON {
				t.Errorf("JSON output: got %v, want %v: %s", got, tt.wantJSON, last)
			}
		})
	}
}

func TestNewLoggerRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Log
		want string
	}{
		{"level", config.Log{Level: "loud", Format: "json"}, "log.level"},
		{"format", config.Log{Level: "info", Format: "xml"}, "log.format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := newLogger(tt.cfg, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// TestLogControl: a reload may change the level of the running logger at
// once, but not its format; a bad level is refused.
func TestLogControl(t *testing.T) {
	var buf bytes.Buffer
	log, lc, err := newLogger(config.Log{Level: "info", Format: "json"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		cfg  config.Log
		want string
	}{
		{"format", config.Log{Level: "info", Format: "console"}, "log.format needs a restart"},
		{"level", config.Log{Level: "chatty", Format: "json"}, "log.level"},
	} {
		if err := lc.check(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("check %s: got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	debug := config.Log{Level: "debug", Format: "json"}
	if err := lc.check(debug); err != nil {
		t.Fatalf("check level debug: %v", err)
	}
	log.Debug("before")
	if !lc.changes(debug) {
		t.Error("changes to debug from info: got false, want true")
	}
	if !lc.apply(debug) {
		t.Error("apply debug over info: got unchanged, want changed")
	}
	log.Debug("after")
	if lc.apply(debug) || lc.changes(debug) {
		t.Error("apply debug again: got changed, want unchanged")
	}
	if out := buf.String(); strings.Contains(out, `"before"`) || !strings.Contains(out, `"after"`) {
		t.Errorf("debug lines: got %q, want only the one logged after the level changed", out)
	}
}
