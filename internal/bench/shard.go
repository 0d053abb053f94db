package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// shard is a contiguous slice of the clients, held either in this process
// (localShard) or by a worker process (procShard). Run drives every shard
// through the same phases, so the single-process path and the worker path
// measure the same way.
type shard interface {
	id() int                         // index into Run's shard list
	pid() int                        // the worker's process id, 0 in-process
	ready(ctx context.Context) error // started and configured, nothing dialled yet
	connect(ctx context.Context) (*connectReport, error)
	// measure waits until every client saw EXISTS for the last message
	// appended (or until), then reports each client's latencies.
	measure(ctx context.Context, base uint32, appended []time.Time, until time.Time) (*measureReport, error)
	counts() (connected, done int) // progress so far
	close()
}

// spec describes clients first..first+count-1 of the run.
func (o *Options) spec(first, count int) shardSpec {
	connecting := o.Connecting
	if connecting > 0 && count < o.Clients {
		// Each shard dials its share of the global concurrency.
		connecting = max(1, (o.Connecting*count+o.Clients-1)/o.Clients)
	}
	return shardSpec{
		Proxy: o.Proxy, User: o.User, UserTemplate: o.UserTemplate, Password: o.Password, Mailbox: o.Mailbox,
		First: first, Count: count, Connecting: connecting,
		TLS: o.TLS, TLSInsecure: o.TLSInsecure, TLSCAFile: o.TLSCAFile,
	}
}

// plan splits the clients into shards: one in-process shard when this
// process may hold them all and no workers were asked for, else worker
// processes with contiguous index ranges, so user names (--user-template)
// and source addresses stay globally unique.
func plan(o Options) ([]shard, error) {
	capacity := perProcess()
	workers := o.Workers
	if workers == 0 && o.Clients > capacity {
		workers = (o.Clients + capacity - 1) / max(1, capacity)
	}
	if workers == 0 {
		cs, err := newClientSet(o.spec(0, o.Clients))
		if err != nil {
			return nil, err
		}
		return []shard{&localShard{cs}}, nil
	}
	workers = min(workers, o.Clients)
	if per := (o.Clients + workers - 1) / workers; per > capacity {
		return nil, fmt.Errorf("%d clients over %d workers is %d per worker, more than the %d one process may hold: use more workers", o.Clients, workers, per, capacity)
	}
	shards := make([]shard, 0, workers)
	for w := range workers {
		first, next := w*o.Clients/workers, (w+1)*o.Clients/workers
		s, err := startWorker(w, o.spec(first, next-first), o.WorkerCmd)
		if err != nil {
			closeShards(shards)
			return nil, err
		}
		shards = append(shards, s)
	}
	return shards, nil
}

// eachShard runs f on every shard at once and returns the first error; the
// first failure cancels the others, so one dead worker fails the phase at
// once instead of after the slowest healthy one.
func eachShard(ctx context.Context, shards []shard, f func(context.Context, shard) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx, s); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	return first
}

func closeShards(shards []shard) {
	var wg sync.WaitGroup
	for _, s := range shards {
		wg.Add(1)
		go func() { defer wg.Done(); s.close() }()
	}
	wg.Wait()
}

func counts(shards []shard) (connected, done int) {
	for _, s := range shards {
		c, d := s.counts()
		connected += c
		done += d
	}
	return connected, done
}

// shardPIDs lists the worker processes, which memory sampling by command
// name must skip: they are this program too.
func shardPIDs(shards []shard) []int {
	var pids []int
	for _, s := range shards {
		if p := s.pid(); p > 0 {
			pids = append(pids, p)
		}
	}
	return pids
}

// localShard holds its clients in this process.
type localShard struct{ cs *clientSet }

func (l *localShard) id() int                     { return 0 }
func (l *localShard) pid() int                    { return 0 }
func (l *localShard) ready(context.Context) error { return nil }
func (l *localShard) counts() (int, int)          { return l.cs.counts() }
func (l *localShard) close()                      { l.cs.close() }

func (l *localShard) connect(ctx context.Context) (*connectReport, error) {
	return l.cs.connect(ctx), ctx.Err()
}

func (l *localShard) measure(ctx context.Context, base uint32, appended []time.Time, until time.Time) (*measureReport, error) {
	l.cs.wait(ctx, base+uint32(len(appended)), until)
	return l.cs.measure(base, appended), ctx.Err()
}
