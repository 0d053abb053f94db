package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// The parent and a worker exchange one JSON object per line, the parent on
// the worker's stdin, the worker on its stdout (stderr is free for its
// diagnostics):
//
//	parent → worker  {"type":"start","start":{...shardSpec}}
//	worker → parent  {"type":"ready"}                      files raised, TLS loaded
//	parent → worker  {"type":"connect"}                    sent to all workers at once
//	worker → parent  {"type":"progress","progress":{...}}  any time, repeatedly
//	worker → parent  {"type":"connected","connected":{...connectReport}}
//	parent → worker  {"type":"measure","measure":{...measureRequest}}
//	worker → parent  {"type":"result","result":{...measureReport}}
//	parent closes stdin; the worker closes its clients and exits
//
// A worker that cannot go on sends {"type":"error","error":"..."} and
// exits; a worker whose stdin reaches EOF at any point exits too, so a
// parent that dies takes its workers with it. The ready/connect split lets
// every worker's clients start dialling at the same moment, process start
// not counted. Times cross the process boundary as wall-clock Unix
// nanoseconds (a monotonic reading means nothing in another process) and
// durations as integer nanoseconds.
const (
	msgStart     = "start"
	msgReady     = "ready"
	msgConnect   = "connect"
	msgProgress  = "progress"
	msgConnected = "connected"
	msgMeasure   = "measure"
	msgResult    = "result"
	msgError     = "error"
)

// message is one line; Type says which of the other fields is set.
type message struct {
	Type      string          `json:"type"`
	Start     *shardSpec      `json:"start,omitempty"`
	Progress  *progressReport `json:"progress,omitempty"`
	Connected *connectReport  `json:"connected,omitempty"`
	Measure   *measureRequest `json:"measure,omitempty"`
	Result    *measureReport  `json:"result,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// shardSpec is what one shard needs to connect its clients: indexes
// First..First+Count-1 of the run. The password travels here rather than
// on the command line, where ps would show it.
type shardSpec struct {
	Proxy        string `json:"proxy"`
	User         string `json:"user,omitempty"`
	UserTemplate string `json:"user_template,omitempty"`
	Password     string `json:"password"`
	Mailbox      string `json:"mailbox"`
	First        int    `json:"first"`
	Count        int    `json:"count"`
	Connecting   int    `json:"connecting"` // this shard's share; 0 all at once
	TLS          string `json:"tls,omitempty"`
	TLSInsecure  bool   `json:"tls_insecure,omitempty"`
	TLSCAFile    string `json:"tls_ca_file,omitempty"`
}

type progressReport struct {
	Connected int `json:"connected"` // clients connected so far
	Done      int `json:"done"`      // clients that saw the target EXISTS
}

type connectReport struct {
	Connected  int             `json:"connected"`
	Times      []time.Duration `json:"connect_ns"` // per connected client: dial to IDLE started
	FirstError string          `json:"first_error,omitempty"`
}

type measureRequest struct {
	Base       uint32  `json:"base"`        // messages before the first APPEND
	AppendedNS []int64 `json:"appended_ns"` // APPEND completions, wall-clock Unix ns
	UntilNS    int64   `json:"until_ns"`    // stop waiting at this wall-clock Unix ns
}

type measureReport struct {
	Latencies  []time.Duration `json:"latency_ns"` // APPEND done to EXISTS, per client and message
	Deliveries int             `json:"deliveries"`
	Missed     int             `json:"missed"`
	Dups       int             `json:"dups"`
}

// newMeasureRequest converts the parent's times to the wire form.
func newMeasureRequest(base uint32, appended []time.Time, until time.Time) *measureRequest {
	r := &measureRequest{Base: base, UntilNS: until.UnixNano(), AppendedNS: make([]int64, len(appended))}
	for i, t := range appended {
		r.AppendedNS[i] = t.UnixNano()
	}
	return r
}

// times converts back; the results carry no monotonic reading, so
// latencies against them are wall-clock differences.
func (r *measureRequest) times() (appended []time.Time, until time.Time) {
	appended = make([]time.Time, len(r.AppendedNS))
	for i, ns := range r.AppendedNS {
		appended[i] = time.Unix(0, ns)
	}
	return appended, time.Unix(0, r.UntilNS)
}

// encoder writes messages, one per line, from several goroutines.
type encoder struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newEncoder(w io.Writer) *encoder { return &encoder{enc: json.NewEncoder(w)} }

func (e *encoder) send(m message) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.enc.Encode(m); err != nil {
		return fmt.Errorf("sending %s: %w", m.Type, err)
	}
	return nil
}
