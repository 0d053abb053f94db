package main

import (
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/proxy"
)

func runServe(args []string, stderr io.Writer, sigs <-chan os.Signal) int {
	cfg, path, code, ok := loadConfig("serve", args, stderr)
	if !ok {
		return code
	}
	log, logs, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "idlemux: %v\n", err)
		return exitFailure
	}
	defer log.Sync() //nolint:errcheck // nothing to do if stderr cannot sync

	shutdownTimeout = cfg.ShutdownTimeout
	srv, err := proxy.New(cfg, log)
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return exitFailure
	}
	if err := srv.Start(); err != nil {
		log.Error("starting proxy", zap.Error(err))
		return exitFailure
	}
	log.Info("idlemux serving", append([]zap.Field{
		zap.String("version", version),
		zap.Strings("listeners", listenAddrs(srv, cfg))}, upstreamFields(cfg)...)...)
	code, _ = awaitShutdownWith(srv, sigs, log, func() { reloadConfig(srv, path, log, logs) })
	return code
}

// listenAddrs prefers the bound addresses (which resolve port 0) and falls
// back to the configured ones.
func listenAddrs(srv proxyServer, cfg *config.Config) []string {
	if addrs := srv.Addrs(); len(addrs) > 0 {
		return addrs
	}
	addrs := make([]string, len(cfg.Listeners))
	for i, l := range cfg.Listeners {
		addrs[i] = l.Address
	}
	return addrs
}

// reloadConfig handles SIGHUP in serve mode: the file is read and validated
// again; an invalid one is rejected whole and the running config kept. The
// log level changes with it.
func reloadConfig(srv *proxy.Server, path string, log *zap.Logger, logs *logControl) {
	cfg, err := config.Load(path)
	if err != nil {
		log.Error("reload rejected: invalid configuration; keeping the running one", zap.Error(err))
		return
	}
	if err := logs.check(cfg.Log); err != nil {
		log.Error("reload rejected; keeping the running configuration", zap.Error(err))
		return
	}
	if err := srv.ApplyConfig(cfg); err != nil {
		log.Error("reload rejected; keeping the running configuration", zap.Error(err))
		return
	}
	// Said before the change, at the level every setting shows (a switch
	// to error would otherwise hide its own notice).
	if logs.changes(cfg.Log) {
		log.Error("log level changing", zap.String("from", logs.level.Level().String()), zap.String("to", cfg.Log.Level))
		logs.apply(cfg.Log)
	}
}

// upstreamFields describes where logins go: the one upstream's address,
// or each named upstream as name=address (tls) and the default.
func upstreamFields(cfg *config.Config) []zap.Field {
	if len(cfg.Upstreams) == 0 {
		return []zap.Field{zap.String("upstream", cfg.Upstream.Address), zap.String("upstream_tls", string(cfg.Upstream.TLS))}
	}
	var ups []string
	for _, u := range cfg.Upstreams {
		ups = append(ups, fmt.Sprintf("%s=%s (%s)", u.Name, u.Address, u.TLS))
	}
	return []zap.Field{zap.Strings("upstreams", ups), zap.String("default_upstream", cfg.DefaultUpstream)}
}
