package main

import (
	"runtime"
	"strings"
	"testing"
)

const validConfig = `listeners:
  - address: 127.0.0.1:0
upstream:
  address: 127.0.0.1:1
  tls: none
log:
  level: warn
`

func TestRunCommands(t *testing.T) {
	good := writeConfig(t, validConfig)
	bad := writeConfig(t, "listeners: []\nupstream:\n  address: x\n  idle_refersh: 1m\n")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{"no command", nil, exitUsage, nil, []string{"usage: idlemux"}},
		{"unknown command", []string{"frobnicate"}, exitUsage, nil, []string{`unknown command "frobnicate"`, "usage: idlemux"}},
		{"help", []string{"help"}, exitOK, []string{"usage: idlemux", "check-config"}, nil},
		{"--help", []string{"--help"}, exitOK, []string{"usage: idlemux"}, nil},
		{"version", []string{"version"}, exitOK, []string{"idlemux dev", runtime.Version()}, nil},
		{"version with argument", []string{"version", "extra"}, exitUsage, nil, []string{`unexpected argument "extra"`}},
		{"serve without config", []string{"serve"}, exitUsage, nil, []string{"--config is required", "usage: idlemux serve --config FILE"}},
		{"serve unknown flag", []string{"serve", "--conf", good}, exitUsage, nil, []string{"flag provided but not defined: -conf"}},
		{"serve -h", []string{"serve", "-h"}, exitOK, nil, []string{"usage: idlemux serve --config FILE"}},
		{"serve missing file", []string{"serve", "--config", "/nonexistent/idlemux.yaml"}, exitFailure, nil, []string{"/nonexistent/idlemux.yaml", "no such file"}},
		{"serve invalid config", []string{"serve", "--config", bad}, exitFailure, nil, []string{"listeners: at least one listener is required"}},
		{"check-config ok", []string{"check-config", "--config", good}, exitOK, []string{"ok\n"}, nil},
		{"check-config single dash", []string{"check-config", "-config", good}, exitOK, []string{"ok\n"}, nil},
		{"check-config problems", []string{"check-config", "--config", bad}, exitFailure, nil, []string{
			bad + ": 3 problems:",
			`upstream.idle_refersh: unknown key (did you mean "idle_refresh"?) (line 4)`,
			"listeners: at least one listener is required",
			`upstream.address: must be host:port, got "x"`,
		}},
		{"check-config missing file", []string{"check-config", "--config", "/nonexistent/x.yaml"}, exitFailure, nil, []string{"/nonexistent/x.yaml"}},
		{"check-config without config", []string{"check-config"}, exitUsage, nil, []string{"--config is required"}},
		{"check-config stray argument", []string{"check-config", "--config", good, "more"}, exitUsage, nil, []string{`unexpected argument "more"`}},
		{"demo bad listen", []string{"demo", "--listen", "nope"}, exitUsage, nil, []string{`--listen must be host:port, got "nope"`}},
		{"demo bad every", []string{"demo", "--every", "often"}, exitUsage, nil, []string{`invalid value "often" for flag -every`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := execute(t, nil, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout: got %q, want it to contain %q", stdout, w)
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr: got %q, want it to contain %q", stderr, w)
				}
			}
		})
	}
}

func TestServeStopsOnSignal(t *testing.T) {
	path := writeConfig(t, strings.Replace(validConfig, "level: warn", "level: info", 1))
	code, _, stderr := execute(t, signalled(1), "serve", "--config", path)
	if code != exitOK {
		t.Fatalf("exit code: got %d, want %d\nstderr: %s", code, exitOK, stderr)
	}
	for _, want := range []string{`"msg":"idlemux serving"`, `"msg":"shutting down; signal again to exit immediately"`, `"msg":"stopped"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("log: got %s, want it to contain %s", stderr, want)
		}
	}
}

func TestDemoRunsAndStops(t *testing.T) {
	code, stdout, stderr := execute(t, signalled(1), "demo", "--listen", "127.0.0.1:0", "--every", "50ms")
	if code != exitOK {
		t.Fatalf("exit code: got %d, want %d\nstderr: %s", code, exitOK, stderr)
	}
	for _, want := range []string{
		"idlemux dev demo",
		`curl --url "imap://127.0.0.1:`,
		"(list the mailboxes)",
		"--user demo:demo",
		"/INBOX;UID=1\" --user demo:demo",
		"nc 127.0.0.1 ",
		"a LOGIN demo demo",
		"every 50ms",
		"status: sessions=0 upstream_conns=0 mailboxes_watched=0",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout: got\n%s\nwant it to contain %q", stdout, want)
		}
	}
	if !strings.Contains(stderr, "demo upstream listening") {
		t.Errorf("log: got %s, want the demo upstream's start logged", stderr)
	}
}
