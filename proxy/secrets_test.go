package proxy

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

// TestLogsNeverHoldPasswords: at debug level, a successful and a failed
// login, a command session and a shutdown leave no trace of either password
// in any log message or field.
func TestLogsNeverHoldPasswords(t *testing.T) {
	up := startMemUpstream(t)
	p, logs := startObservedProxy(t, testConfig(up.addr))
	rc := dialRaw(t, p.Addrs()[0])
	const wrong = "Wr0ngSecretValue"
	rc.cmd("a", "LOGIN "+testUser+" "+wrong)
	rc.cmd("b", "LOGIN "+testUser+" "+testPass)
	rc.cmd("c", "SELECT INBOX")
	rc.cmd("d", "LOGOUT")

	if logs.Len() == 0 {
		t.Fatal("no logs recorded")
	}
	for _, e := range logs.All() {
		enc := zapcore.NewMapObjectEncoder()
		for _, f := range e.Context {
			f.AddTo(enc)
		}
		line := e.Message + " " + fmt.Sprint(enc.Fields)
		for _, secret := range []string{testPass, wrong} {
			if strings.Contains(line, secret) {
				t.Fatalf("log entry holds a password: %q", line)
			}
		}
	}
}
