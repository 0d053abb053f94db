package main

import (
	"fmt"
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/idlemux/idlemux/config"
)

// newLogger builds the process logger from the log section of the config,
// writing to w (stderr in production, keeping stdout for command output).
// The level is an atomic one, so a reload can change it (logControl).
func newLogger(c config.Log, w io.Writer) (*zap.Logger, *logControl, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, nil, fmt.Errorf("log.level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeDuration = zapcore.StringDurationEncoder
	var encoder zapcore.Encoder
	switch c.Format {
	case "json":
		encoder = zapcore.NewJSONEncoder(enc)
	case "console":
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		encoder = zapcore.NewConsoleEncoder(enc)
	default:
		return nil, nil, fmt.Errorf("log.format: must be json or console, got %q", c.Format)
	}
	lc := &logControl{level: zap.NewAtomicLevelAt(level), format: c.Format}
	sink := zapcore.Lock(zapcore.AddSync(w))
	return zap.New(zapcore.NewCore(encoder, sink, lc.level), zap.ErrorOutput(sink), zap.AddCaller()), lc, nil
}

// logControl is what a reload may change of the running logger: the level
// (an operator turns on debug to chase a problem without dropping
// sessions). The format is fixed by the encoder: a change needs a restart.
type logControl struct {
	level  zap.AtomicLevel
	format string
}

// check refuses a log section the running logger cannot take.
func (lc *logControl) check(c config.Log) error {
	if c.Format != lc.format {
		return fmt.Errorf("log.format needs a restart (running %q, file says %q)", lc.format, c.Format)
	}
	if _, err := zapcore.ParseLevel(c.Level); err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	return nil
}

// changes reports whether a checked log section sets another level.
func (lc *logControl) changes(c config.Log) bool {
	level, err := zapcore.ParseLevel(c.Level)
	return err == nil && level != lc.level.Level()
}

// apply sets the level from a checked log section; it reports whether the
// level changed.
func (lc *logControl) apply(c config.Log) bool {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil || level == lc.level.Level() {
		return false
	}
	lc.level.SetLevel(level)
	return true
}
