package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// WorkerArgs are the arguments after the program name that make the
// idlemux binary a bench worker (`idlemux bench --worker`): a hidden mode
// that calls ServeWorker on stdin and stdout.
var WorkerArgs = []string{"bench", "--worker"}

// errParentGone is returned when the parent closes the worker's stdin
// before the run is over: the parent died or gave up.
var errParentGone = errors.New("parent closed the worker's input")

// ServeWorker runs one worker: it reads the parent's messages from in and
// writes its own to out (protocol.go), holding the clients of one shard.
// It returns when the run is over or stdin reaches EOF, closing every
// client; an error is also reported to the parent when it can be.
func ServeWorker(in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	msgs := make(chan message)
	go func() {
		dec := json.NewDecoder(in)
		for {
			var m message
			if err := dec.Decode(&m); err != nil {
				if errors.Is(err, io.EOF) {
					err = errParentGone
				}
				cancel(err)
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	next := func(want string) (message, error) {
		select {
		case m := <-msgs:
			if m.Type != want {
				return m, fmt.Errorf("protocol: got %q, want %q", m.Type, want)
			}
			return m, nil
		case <-ctx.Done():
			return message{}, context.Cause(ctx)
		}
	}
	enc := newEncoder(out)
	w := &worker{enc: enc, ctx: ctx, next: next}
	err := w.run()
	if err != nil && !errors.Is(err, errParentGone) {
		enc.send(message{Type: msgError, Error: err.Error()}) //nolint:errcheck // the parent may be gone
	}
	if w.cs != nil {
		w.cs.close()
	}
	return err
}

type worker struct {
	enc  *encoder
	ctx  context.Context
	next func(want string) (message, error)
	cs   *clientSet
}

// run goes through the phases in order; any message out of order is a
// protocol error.
func (w *worker) run() error {
	m, err := w.next(msgStart)
	if err != nil {
		return err
	}
	if m.Start == nil {
		return errors.New("protocol: start without a spec")
	}
	spec := *m.Start
	if room := perProcess(); spec.Count > room {
		return fmt.Errorf("%d clients exceed the %d this process may hold", spec.Count, room)
	}
	if w.cs, err = newClientSet(spec); err != nil {
		return err
	}
	if err := w.enc.send(message{Type: msgReady}); err != nil {
		return err
	}
	if _, err := w.next(msgConnect); err != nil {
		return err
	}
	stop := w.reportProgress()
	r := w.cs.connect(w.ctx)
	stop()
	if err := w.ctx.Err(); err != nil {
		return context.Cause(w.ctx)
	}
	if err := w.enc.send(message{Type: msgConnected, Connected: r}); err != nil {
		return err
	}
	if m, err = w.next(msgMeasure); err != nil {
		return err
	}
	if m.Measure == nil {
		return errors.New("protocol: measure without a request")
	}
	appended, until := m.Measure.times()
	stop = w.reportProgress()
	w.cs.wait(w.ctx, m.Measure.Base+uint32(len(appended)), until)
	stop()
	if err := w.ctx.Err(); err != nil {
		return context.Cause(w.ctx)
	}
	if err := w.enc.send(message{Type: msgResult, Result: w.cs.measure(m.Measure.Base, appended)}); err != nil {
		return err
	}
	// Hold the clients until the parent is done with every worker: its
	// closing stdin ends the run.
	<-w.ctx.Done()
	return nil
}

// reportProgress sends the shard's counts every 100 ms while they change,
// and once more when stopped.
func (w *worker) reportProgress() (stop func()) {
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var last progressReport
		report := func() {
			var p progressReport
			p.Connected, p.Done = w.cs.counts()
			if p != last && w.enc.send(message{Type: msgProgress, Progress: &p}) == nil {
				last = p
			}
		}
		for {
			report()
			select {
			case <-t.C:
			case <-quit:
				report()
				return
			}
		}
	}()
	return func() { close(quit); <-finished }
}
