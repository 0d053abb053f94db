package demo

import (
	"fmt"
	"strings"

	"go.uber.org/zap"
)

// printfLogger routes imapserver's Printf logging to zap. imapserver logs
// every dropped client ("failed to read command: EOF"), which is routine
// for a demo, so only panics are logged above debug level.
type printfLogger struct{ log *zap.Logger }

func (l printfLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.HasPrefix(format, "panic") {
		l.log.Error("demo upstream: " + msg)
		return
	}
	l.log.Debug("demo upstream: " + msg)
}
