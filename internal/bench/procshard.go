package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds on a worker's answers, besides the run's own context: starting a
// process and loading TLS roots is quick, and a worker reports its result
// right after the wait it was given.
const (
	readyTimeout  = 30 * time.Second
	resultGrace   = 30 * time.Second
	shutdownGrace = 3 * time.Second
)

// procShard is the parent's handle on one worker process.
type procShard struct {
	index  int
	spec   shardSpec
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	enc    *encoder
	stderr *tailBuffer

	msgs    chan message  // everything but progress; closed once the worker exited
	quit    chan struct{} // closed by close: nobody reads msgs any more
	exited  chan struct{} // closed once the worker exited
	readErr error         // set before msgs closes
	waitErr error         // set before msgs closes

	connected, done atomic.Int64
	closeOnce       sync.Once
}

func defaultWorkerCmd(args []string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return exec.Command(exe, args...)
}

// startWorker starts worker index and sends it its spec. The worker is
// tied to this process twice: it gets SIGKILL when this process dies
// (dieWithParent, Linux), and it exits when its stdin reaches EOF.
func startWorker(index int, spec shardSpec, workerCmd func([]string) *exec.Cmd) (*procShard, error) {
	if workerCmd == nil {
		workerCmd = defaultWorkerCmd
	}
	s := &procShard{
		index: index, spec: spec, stderr: &tailBuffer{max: 2048},
		msgs: make(chan message), quit: make(chan struct{}), exited: make(chan struct{}),
	}
	s.cmd = workerCmd(append([]string(nil), WorkerArgs...))
	if s.cmd == nil {
		return nil, s.fail(errors.New("no worker command"))
	}
	dieWithParent(s.cmd)
	if s.cmd.Stderr == nil {
		s.cmd.Stderr = s.stderr
	}
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		return nil, s.fail(err)
	}
	if s.stdout, err = s.cmd.StdoutPipe(); err != nil {
		return nil, s.fail(err)
	}
	// A worker command that leaves a child holding the worker's stderr
	// must not hold up Wait.
	if s.cmd.WaitDelay == 0 {
		s.cmd.WaitDelay = shutdownGrace
	}
	if err := s.cmd.Start(); err != nil {
		return nil, s.fail(fmt.Errorf("starting: %w", err))
	}
	s.enc = newEncoder(s.stdin)
	go s.read()
	if err := s.send(context.Background(), message{Type: msgStart, Start: &spec}); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// read decodes the worker's messages until its stdout closes, keeping
// progress for the display and passing the rest on, then reaps it.
func (s *procShard) read() {
	dec := json.NewDecoder(s.stdout)
	for {
		var m message
		if err := dec.Decode(&m); err != nil {
			if !errors.Is(err, io.EOF) {
				s.readErr = err
				s.kill() // it cannot be understood any more
			}
			break
		}
		if m.Type == msgProgress {
			if m.Progress != nil {
				s.connected.Store(int64(m.Progress.Connected))
				s.done.Store(int64(m.Progress.Done))
			}
			continue
		}
		select {
		case s.msgs <- m:
		case <-s.quit:
		}
	}
	s.waitErr = s.cmd.Wait()
	close(s.msgs)
	close(s.exited)
}

func (s *procShard) id() int  { return s.index }
func (s *procShard) pid() int { return s.cmd.Process.Pid }

func (s *procShard) counts() (int, int) {
	return int(s.connected.Load()), int(s.done.Load())
}

func (s *procShard) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	_, err := s.expect(ctx, msgReady)
	return err
}

func (s *procShard) connect(ctx context.Context) (*connectReport, error) {
	if err := s.send(ctx, message{Type: msgConnect}); err != nil {
		return nil, err
	}
	m, err := s.expect(ctx, msgConnected)
	if err != nil {
		return nil, err
	}
	if m.Connected == nil {
		return nil, s.fail(errors.New("protocol: connected without a report"))
	}
	s.connected.Store(int64(m.Connected.Connected))
	return m.Connected, nil
}

func (s *procShard) measure(ctx context.Context, base uint32, appended []time.Time, until time.Time) (*measureReport, error) {
	if err := s.send(ctx, message{Type: msgMeasure, Measure: newMeasureRequest(base, appended, until)}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithDeadline(ctx, until.Add(resultGrace))
	defer cancel()
	m, err := s.expect(ctx, msgResult)
	if err != nil {
		return nil, err
	}
	if m.Result == nil {
		return nil, s.fail(errors.New("protocol: result without a report"))
	}
	return m.Result, nil
}

// send writes one message; ctx ending kills the worker, which unblocks a
// write to a worker that stopped reading.
func (s *procShard) send(ctx context.Context, m message) error {
	stop := context.AfterFunc(ctx, s.kill)
	defer stop()
	if err := s.enc.send(m); err != nil {
		s.kill()
		return s.fail(err)
	}
	return nil
}

// expect waits for the next message, which must be of type want. Any
// failure kills the worker: the run is over for it.
func (s *procShard) expect(ctx context.Context, want string) (message, error) {
	var err error
	select {
	case m, ok := <-s.msgs:
		switch {
		case !ok:
			err = s.exitError()
		case m.Type == want:
			return m, nil
		case m.Type == msgError:
			err = errors.New(m.Error)
		default:
			err = fmt.Errorf("protocol: got %q, want %q", m.Type, want)
		}
	case <-ctx.Done():
		err = fmt.Errorf("no %s: %w", want, ctx.Err())
	}
	s.kill()
	return message{}, s.fail(err)
}

// exitError describes a worker that exited while a message was due; only
// called once msgs is closed.
func (s *procShard) exitError() error {
	why := "exited"
	if s.waitErr != nil {
		why = "exited: " + s.waitErr.Error()
	}
	if s.readErr != nil {
		why = "sent unreadable output: " + s.readErr.Error()
	}
	if tail := strings.TrimSpace(s.stderr.String()); tail != "" {
		why += "; its stderr ends: " + tail
	}
	return errors.New(why)
}

func (s *procShard) fail(err error) error {
	return fmt.Errorf("worker %d (clients %d-%d): %w", s.index, s.spec.First, s.spec.First+s.spec.Count-1, err)
}

func (s *procShard) kill() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill() //nolint:errcheck // it may have exited already
	}
}

// close ends the worker: EOF on its stdin asks it to close its clients and
// exit; one that does not within shutdownGrace is killed, and if its
// stdout still stays open (a child of the worker command holds it), the
// parent stops reading it.
func (s *procShard) close() {
	s.closeOnce.Do(func() {
		close(s.quit)
		s.stdin.Close()
		select {
		case <-s.exited:
			return
		case <-time.After(shutdownGrace):
		}
		s.kill()
		select {
		case <-s.exited:
			return
		case <-time.After(shutdownGrace):
		}
		s.stdout.Close()
		<-s.exited
	})
}

// tailBuffer keeps the last max bytes written to it: a worker's stderr,
// for the error that reports its death.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
