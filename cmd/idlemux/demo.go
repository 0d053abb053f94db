package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/demo"
	"github.com/idlemux/idlemux/proxy"
)

// demoEvery is how often the demo upstream receives a new message.
const demoEvery = 10 * time.Second

// runDemo starts the in-process demo upstream and the proxy in front of it,
// so idlemux can be tried with nothing but the binary.
func runDemo(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	fs := newFlagSet("demo", "demo [--listen ADDR] [--every DURATION] [--metrics ADDR]", stderr)
	listen := fs.String("listen", config.DemoListenAddress, "proxy listen `ADDR`ess")
	every := fs.Duration("every", demoEvery, "deliver a new message to INBOX every `DURATION` (0 disables)")
	metricsAddr := fs.String("metrics", "", "serve /metrics on `ADDR` (for idlemux bench --metrics)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}

	if _, _, err := net.SplitHostPort(*listen); err != nil {
		fmt.Fprintf(stderr, "idlemux demo: --listen must be host:port, got %q\n", *listen)
		fs.Usage()
		return exitUsage
	}
	log, _, err := newLogger(config.Demo("").Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "idlemux: %v\n", err)
		return exitFailure
	}
	defer log.Sync() //nolint:errcheck // nothing to do if stderr cannot sync

	up, err := demo.Start(log.Named("demo-upstream"), *every)
	if err != nil {
		log.Error("starting demo upstream", zap.Error(err))
		return exitFailure
	}
	closeUpstream := func() {
		if err := up.Close(); err != nil {
			log.Warn("closing demo upstream", zap.Error(err))
		}
	}
	cfg := config.Demo(up.Addr())
	cfg.Listeners[0].Address = *listen
	cfg.Metrics.Address = *metricsAddr

	srv, err := proxy.New(cfg, log)
	if err != nil {
		log.Error("invalid demo configuration", zap.Error(err))
		closeUpstream()
		return exitFailure
	}
	if err := srv.Start(); err != nil {
		log.Error("starting proxy", zap.Error(err), zap.String("listen", *listen))
		closeUpstream()
		return exitFailure
	}
	printBanner(stdout, listenAddrs(srv, cfg)[0], up.Addr(), *every)

	stop, done := make(chan struct{}), make(chan struct{})
	go printStatus(stdout, srv, statusInterval, stop, done)
	code, forced := awaitShutdown(srv, sigs, log)
	close(stop)
	<-done
	if !forced {
		// The proxy has logged out upstream; only now close the upstream.
		closeUpstream()
	}
	return code
}

func printBanner(w io.Writer, proxyAddr, upstreamAddr string, every time.Duration) {
	host, port, err := net.SplitHostPort(proxyAddr)
	if err != nil {
		host, port = proxyAddr, "1143"
	}
	hostPort := net.JoinHostPort(host, port)
	delivery := fmt.Sprintf("a new message arrives in INBOX every %s", every)
	if every <= 0 {
		delivery = "no new messages arrive (--every 0)"
	}
	fmt.Fprintf(w, `idlemux %s demo
  proxy:     imap://%s  (plaintext, LOGIN allowed)
  upstream:  %s  (in-process demo server; %s)
  account:   user %s, password %s

Try it:
  curl --url "imap://%s/" --user %s:%s          (list the mailboxes)
  curl --url "imap://%s/INBOX;UID=1" --user %s:%s     (read the first message)
  nc %s %s
      a LOGIN %s %s
      b SELECT INBOX
      c IDLE          (new messages show up as "* N EXISTS"; type DONE to stop)

Press Ctrl-C to stop (twice to skip the graceful shutdown).

`, version, hostPort, upstreamAddr, delivery, demo.Username, demo.Password,
		hostPort, demo.Username, demo.Password, hostPort, demo.Username, demo.Password,
		host, port, demo.Username, demo.Password)
}
