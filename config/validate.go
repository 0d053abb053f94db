package config

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// validate applies raw onto c, which holds the defaults, recording every
// problem in ps. It checks everything it can even after a failure so the
// operator sees all problems at once.
func validate(raw *rawConfig, c *Config, ps *problems) {
	validateListeners(raw.Listeners, c, ps)
	validateTLSFiles(raw.TLS, c, ps)
	validateRoutes(raw, c, ps)
	validateLog(raw.Log, &c.Log, ps)
	validateFanout(raw.Fanout, &c.Fanout, ps)
	validateCache(raw.Cache, &c.Cache, ps)
	if raw.Metrics != nil && raw.Metrics.Address != nil && *raw.Metrics.Address != "" {
		if _, _, err := net.SplitHostPort(*raw.Metrics.Address); err != nil {
			ps.add("metrics.address", "must be host:port, got %q", *raw.Metrics.Address)
		} else {
			c.Metrics.Address = *raw.Metrics.Address
		}
	}
	validateLimits(raw.Limits, &c.Limits, ps)
	validateAuth(raw.Auth, &c.Auth, ps)
	validateUserRoutes(c, ps)
	userMechanisms(c)
	c.ShutdownTimeout = duration(ps, "shutdown_timeout", raw.ShutdownTimeout, c.ShutdownTimeout, durationRule{})
	c.Keepalive = duration(ps, "keepalive", raw.Keepalive, c.Keepalive, durationRule{allowZero: true})
	if raw.Compress != nil {
		c.Compress = *raw.Compress
	}
}

func validateLog(raw *rawLog, c *Log, ps *problems) {
	if raw == nil {
		return
	}
	c.Level = oneOf(ps, "log.level", raw.Level, c.Level, "debug", "info", "warn", "error")
	c.Format = oneOf(ps, "log.format", raw.Format, c.Format, "json", "console")
}

func validateFanout(raw *rawFanout, c *Fanout, ps *problems) {
	if raw == nil || raw.MaxLag == nil {
		return
	}
	if *raw.MaxLag < 1 {
		ps.add("fanout.max_lag", "must be >= 1, got %d", *raw.MaxLag)
		return
	}
	c.MaxLag = int(*raw.MaxLag)
}

// validateCache: sizes are bytes; a value may not exceed the whole cache.
func validateCache(raw *rawCache, c *Cache, ps *problems) {
	if raw == nil {
		return
	}
	if raw.Enabled != nil {
		c.Enabled = *raw.Enabled
	}
	if raw.MaxBytes != nil {
		if *raw.MaxBytes < 1 {
			ps.add("cache.max_bytes", "must be >= 1 byte, got %d", *raw.MaxBytes)
		} else {
			c.MaxBytes = int64(*raw.MaxBytes)
		}
	}
	if raw.MaxMessageBytes != nil {
		// An entry's weight is a uint32 in the cache library.
		if *raw.MaxMessageBytes < 1 || int64(*raw.MaxMessageBytes) > 1<<31 {
			ps.add("cache.max_message_bytes", "must be between 1 and 2147483648 bytes, got %d", *raw.MaxMessageBytes)
		} else {
			c.MaxMessageBytes = int64(*raw.MaxMessageBytes)
		}
	}
	if c.MaxMessageBytes > c.MaxBytes {
		ps.add("cache.max_message_bytes", "must be <= cache.max_bytes (%d), got %d", c.MaxBytes, c.MaxMessageBytes)
	}
}

// oneOf returns *v if it is one of allowed, def if v is unset.
func oneOf(ps *problems, key string, v *string, def string, allowed ...string) string {
	if v == nil {
		return def
	}
	if !slices.Contains(allowed, *v) {
		ps.add(key, "must be one of %s, got %q", strings.Join(allowed, ", "), *v)
		return def
	}
	return *v
}

// tlsMode parses a TLS mode, returning def if v is unset.
func tlsMode(ps *problems, key string, v *string, def TLSMode) TLSMode {
	return TLSMode(oneOf(ps, key, v, string(def), string(TLSNone), string(TLSStartTLS), string(TLSImplicit)))
}

// durationRule bounds a duration; max 0 means unbounded.
type durationRule struct {
	allowZero bool
	max       time.Duration
}

// duration parses a Go duration string, returning def if v is unset.
func duration(ps *problems, key string, v *string, def time.Duration, rule durationRule) time.Duration {
	if v == nil {
		return def
	}
	d, err := time.ParseDuration(*v)
	if err != nil {
		ps.add(key, "must be a duration such as \"30s\" or \"25m\", got %q", *v)
		return def
	}
	switch {
	case rule.allowZero && d < 0:
		ps.add(key, "must be >= 0, got %q", *v)
	case !rule.allowZero && d <= 0:
		ps.add(key, "must be > 0, got %q", *v)
	case rule.max > 0 && d > rule.max:
		ps.add(key, "must be <= %s, got %q", shortDuration(rule.max), *v)
	default:
		return d
	}
	return def
}

// shortDuration prints 29m rather than time.Duration's 29m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// str returns *v, or "" if unset: optional strings treat "" as unset so
// templated configs can leave them blank.
func str(v *string) string {
	if v == nil {
		return ""
	}
	return *v
}

func indexKey(list string, i int, field string) string {
	return fmt.Sprintf("%s[%d].%s", list, i, field)
}

func validateLimits(raw *rawLimits, c *Limits, ps *problems) {
	if raw == nil {
		return
	}
	count := func(key string, v *intValue, dst *int) {
		if v == nil {
			return
		}
		if *v < 0 {
			ps.add(key, "must be >= 0 (0: no limit), got %d", *v)
			return
		}
		*dst = int(*v)
	}
	count("limits.max_connections_per_ip", raw.MaxConnectionsPerIP, &c.MaxConnectionsPerIP)
	count("limits.max_connections_per_user", raw.MaxConnectionsPerUser, &c.MaxConnectionsPerUser)
	count("limits.max_parallel_logins_per_ip", raw.MaxParallelLoginsPerIP, &c.MaxParallelLoginsPerIP)
	count("limits.max_queued_logins_per_ip", raw.MaxQueuedLoginsPerIP, &c.MaxQueuedLoginsPerIP)
	if raw.AppendLimit != nil {
		if *raw.AppendLimit < 1 || int64(*raw.AppendLimit) > 1<<32-1 {
			ps.add("limits.append_limit", "must be between 1 and 4294967295 bytes, got %d", *raw.AppendLimit)
		} else {
			c.AppendLimit = int64(*raw.AppendLimit)
		}
	}
	c.LoginTimeout = duration(ps, "limits.login_timeout", raw.LoginTimeout, c.LoginTimeout, durationRule{})
	c.MaxLoginDelay = duration(ps, "limits.max_login_delay", raw.MaxLoginDelay, c.MaxLoginDelay, durationRule{allowZero: true})
}
