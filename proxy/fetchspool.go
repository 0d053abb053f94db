package proxy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/idlemux/idlemux/upstream"
)

// Bounds of the FETCH spool. A session runs one command at a time, so the
// per-FETCH bounds are per-session bounds. Up to the per-FETCH disk bound a
// client that does not read costs disk, not an upstream connection; past
// it (or past the process-wide bounds) the upstream side waits for the
// client again, as before the spool, and the client's writes are bounded
// by imapserver (30 s per response, 5 min per literal), so the wait is too.
// They are variables so tests can lower them.
var (
	// spoolChunkMemPerFetch is literal bytes kept in memory per FETCH
	// before they go to the spool file: enough that a client keeping up
	// never touches the disk.
	spoolChunkMemPerFetch int64 = 1 << 20
	// spoolChunkMemTotal caps literal bytes in memory across all FETCHes.
	spoolChunkMemTotal int64 = 64 << 20
	// spoolRecMemPerFetch caps the estimated memory of items other than
	// literals (ENVELOPE, BODYSTRUCTURE, FLAGS...) held for a client. They
	// are not written to disk: a FETCH of that much metadata to a client
	// that does not read waits for it.
	spoolRecMemPerFetch int64 = 4 << 20
	// spoolDiskPerFetch is the spool file's size bound per FETCH: a few
	// large messages (attachments of tens of MiB) fit.
	spoolDiskPerFetch int64 = 128 << 20
	// spoolDiskTotal caps spool files across all FETCHes, so a wave of
	// stalled clients cannot fill the temporary directory.
	spoolDiskTotal int64 = 1 << 30
)

// spoolMemUsed and spoolDiskUsed count what every spool holds.
var spoolMemUsed, spoolDiskUsed atomic.Int64

// spoolChunkSize is the size of a memory chunk (the copy buffers' size).
const spoolChunkSize = 32 << 10

var spoolChunks = sync.Pool{New: func() any { b := make([]byte, 0, spoolChunkSize); return &b }}

type recKind uint8

const (
	recMessage recKind = iota // a message starts: seq, uid
	recItem                   // one item; size literal bytes follow
	recEnd                    // the message is complete
)

// spoolRec is one step of the FETCH answer. An item's literal (lit) is not
// in the record: its size bytes follow in the spool's byte stream.
type spoolRec struct {
	kind recKind
	seq  uint32
	uid  imap.UID
	item imapclient.FetchItemData
	lit  bool
	size int64
	cost int64
}

// spoolChunk is a run of literal bytes, in memory (buf[r:]) or in the
// spool file (n bytes at off).
type spoolChunk struct {
	buf *[]byte
	r   int
	off int64
	n   int64
}

// fetchSpool decouples a FETCH's two sides: the upstream side writes the
// answer at the upstream's pace and gives the connection back as soon as
// the upstream FETCH completes; the client side reads it at the client's
// pace. Records (message boundaries and items) stay in memory; literal
// bytes go to memory chunks, then to one unlinked temporary file.
type fetchSpool struct {
	mu     sync.Mutex
	cond   sync.Cond
	recs   []spoolRec
	chunks []spoolChunk
	recMem int64 // estimated bytes of recs
	mem    int64 // capacity of memory chunks held
	file   *os.File
	fileW  int64 // the file's size
	fileIn int64 // bytes of the file not yet read
	unread int64 // literal bytes written and not yet read
	// Which side sleeps: the client side is woken only once a batch is
	// ready (spoolWakeBytes, spoolWakeCost) or the answer is complete, so
	// a client that keeps up costs one wakeup per batch, not per item.
	readerWaits, writerWaits bool
	done                     bool  // the upstream side has finished
	err                      error // why the upstream side stopped, if it failed
	rerr                     error // why the client side stopped: the upstream side stops too
	guard                    *upstream.Guard
}

func newFetchSpool() *fetchSpool {
	sp := &fetchSpool{}
	sp.cond.L = &sp.mu
	return sp
}

// errSpoolCut is what the client side reads when the upstream side stopped
// in the middle of a literal: the client's literal cannot be finished.
var errSpoolCut = errors.New("upstream answer cut short")

// Batch sizes that wake a sleeping client side.
const (
	spoolWakeBytes = 64 << 10
	spoolWakeCost  = 8 << 10
)

// waitLocked waits for the other side. The upstream side's guard is paused
// meanwhile: waiting on a slow client is not upstream silence. A waiting
// upstream side always wakes the client side first: only it can make room.
func (sp *fetchSpool) waitLocked(writer bool) {
	if !writer {
		sp.readerWaits = true
		sp.cond.Wait()
		sp.readerWaits = false
		return
	}
	if sp.guard != nil {
		sp.guard.Pause()
		defer sp.guard.Touch()
	}
	sp.writerWaits = true
	sp.cond.Broadcast()
	sp.cond.Wait()
	sp.writerWaits = false
}

// wakeReaderLocked wakes a sleeping client side once a batch is ready.
func (sp *fetchSpool) wakeReaderLocked() {
	if sp.readerWaits && (sp.done || sp.unread >= spoolWakeBytes || sp.recMem >= spoolWakeCost) {
		sp.cond.Broadcast()
	}
}

// wakeWriterLocked wakes a sleeping upstream side: room was made.
func (sp *fetchSpool) wakeWriterLocked() {
	if sp.writerWaits {
		sp.cond.Broadcast()
	}
}

// put adds a record, waiting while records exceed their memory bound.
func (sp *fetchSpool) put(r spoolRec) error {
	r.cost = recCost(r.item)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for sp.rerr == nil && len(sp.recs) > 0 && sp.recMem+r.cost > spoolRecMemPerFetch {
		sp.waitLocked(true)
	}
	if sp.rerr != nil {
		return sp.rerr
	}
	sp.recs = append(sp.recs, r)
	sp.recMem += r.cost
	sp.wakeReaderLocked()
	return nil
}

// Write adds literal bytes: to memory while the memory bounds allow (one
// chunk always may, so a spool makes progress whatever the others hold),
// else to the spool file while the disk bounds allow, else it waits for
// the client side.
func (sp *fetchSpool) Write(p []byte) (int, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	written := 0
	for len(p) > 0 {
		if sp.rerr != nil {
			return written, sp.rerr
		}
		n, err := sp.writeSomeLocked(p)
		if err != nil {
			sp.rerr = err
			sp.cond.Broadcast()
			return written, err
		}
		if n == 0 {
			sp.waitLocked(true)
			continue
		}
		written += n
		sp.unread += int64(n)
		p = p[n:]
	}
	sp.wakeReaderLocked()
	return written, nil
}

// writeSomeLocked places a prefix of p; 0 means no room now.
func (sp *fetchSpool) writeSomeLocked(p []byte) (int, error) {
	if k := len(sp.chunks); k > 0 && sp.chunks[k-1].buf != nil {
		last := sp.chunks[k-1].buf
		if room := cap(*last) - len(*last); room > 0 {
			n := min(room, len(p))
			*last = append(*last, p[:n]...)
			return n, nil
		}
	}
	if sp.mem == 0 || (sp.mem+spoolChunkSize <= spoolChunkMemPerFetch && spoolMemUsed.Load()+spoolChunkSize <= spoolChunkMemTotal) {
		b := spoolChunks.Get().(*[]byte)
		n := min(spoolChunkSize, len(p))
		*b = append((*b)[:0], p[:n]...)
		sp.chunks = append(sp.chunks, spoolChunk{buf: b})
		sp.mem += spoolChunkSize
		spoolMemUsed.Add(spoolChunkSize)
		return n, nil
	}
	if sp.fileIn == 0 && sp.fileW > 0 {
		// Everything on disk was read: reuse the file from the start.
		if err := sp.file.Truncate(0); err != nil {
			return 0, fmt.Errorf("spooling FETCH: %w", err)
		}
		spoolDiskUsed.Add(-sp.fileW)
		sp.fileW = 0
	}
	n := int64(min(spoolChunkSize, len(p)))
	if sp.fileW+n > spoolDiskPerFetch || spoolDiskUsed.Load()+n > spoolDiskTotal {
		return 0, nil
	}
	if sp.file == nil {
		f, err := os.CreateTemp("", "idlemux-fetch-")
		if err != nil {
			return 0, fmt.Errorf("spooling FETCH: %w", err)
		}
		os.Remove(f.Name()) // unlinked: nothing is left behind, whatever happens
		sp.file = f
	}
	if _, err := sp.file.WriteAt(p[:n], sp.fileW); err != nil {
		return 0, fmt.Errorf("spooling FETCH: %w", err)
	}
	sp.chunks = append(sp.chunks, spoolChunk{off: sp.fileW, n: n})
	sp.fileW += n
	sp.fileIn += n
	spoolDiskUsed.Add(n)
	return int(n), nil
}

// finish ends the upstream side; err says why when it failed.
func (sp *fetchSpool) finish(err error) {
	sp.mu.Lock()
	sp.done, sp.err = true, err
	sp.cond.Broadcast()
	sp.mu.Unlock()
}

// next returns the next record; false once the upstream side finished and
// everything was taken.
func (sp *fetchSpool) next() (spoolRec, bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for len(sp.recs) == 0 && !sp.done {
		sp.waitLocked(false)
	}
	if len(sp.recs) == 0 {
		return spoolRec{}, false
	}
	r := sp.recs[0]
	sp.recs[0] = spoolRec{}
	sp.recs = sp.recs[1:]
	sp.recMem -= r.cost
	sp.wakeWriterLocked()
	return r, true
}

// Read reads literal bytes in order. Once the upstream side has finished,
// running out of bytes is an error: a literal's bytes were cut short.
func (sp *fetchSpool) Read(p []byte) (int, error) {
	sp.mu.Lock()
	for len(sp.chunks) == 0 && !sp.done {
		sp.waitLocked(false)
	}
	if len(sp.chunks) == 0 {
		err := sp.err
		sp.mu.Unlock()
		if err == nil {
			return 0, errSpoolCut
		}
		return 0, fmt.Errorf("%w: %v", errSpoolCut, err)
	}
	c := &sp.chunks[0]
	if c.buf != nil {
		n := copy(p, (*c.buf)[c.r:])
		c.r += n
		sp.unread -= int64(n)
		if c.r == len(*c.buf) {
			sp.dropHeadLocked()
		}
		sp.wakeWriterLocked()
		sp.mu.Unlock()
		return n, nil
	}
	// A file chunk: read it without the lock. The writer never touches a
	// region that is not yet read (fileIn > 0 keeps the file).
	off, want, f := c.off, min(int64(len(p)), c.n), sp.file
	sp.mu.Unlock()
	n, err := f.ReadAt(p[:want], off)
	sp.mu.Lock()
	c = &sp.chunks[0]
	c.off += int64(n)
	c.n -= int64(n)
	sp.fileIn -= int64(n)
	sp.unread -= int64(n)
	if c.n == 0 {
		sp.chunks = sp.chunks[1:]
	}
	sp.wakeWriterLocked()
	sp.mu.Unlock()
	if err != nil && n < int(want) {
		return n, fmt.Errorf("reading FETCH spool: %w", err)
	}
	return n, nil
}

// dropHeadLocked returns the first chunk's memory.
func (sp *fetchSpool) dropHeadLocked() {
	b := sp.chunks[0].buf
	sp.chunks[0] = spoolChunk{}
	sp.chunks = sp.chunks[1:]
	sp.mem -= spoolChunkSize
	spoolMemUsed.Add(-spoolChunkSize)
	*b = (*b)[:0]
	spoolChunks.Put(b)
}

// abort stops the client side: the upstream side's next write fails with
// err.
func (sp *fetchSpool) abort(err error) {
	sp.mu.Lock()
	if sp.rerr == nil {
		sp.rerr = err
	}
	sp.cond.Broadcast()
	sp.mu.Unlock()
}

// free gives back memory and disk. Both sides must have stopped.
func (sp *fetchSpool) free() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for len(sp.chunks) > 0 {
		if sp.chunks[0].buf != nil {
			sp.dropHeadLocked()
		} else {
			sp.chunks = sp.chunks[1:]
		}
	}
	if sp.file != nil {
		sp.file.Close()
		spoolDiskUsed.Add(-sp.fileW)
		sp.file, sp.fileW, sp.fileIn = nil, 0, 0
	}
	sp.recs, sp.recMem = nil, 0
}

// copyLiteralIn spools a literal of size bytes from src, failing if src
// ends early.
func (sp *fetchSpool) copyLiteralIn(src io.Reader, size int64) error {
	n, err := copyBuffered(sp, src)
	if err == nil && n != size {
		err = fmt.Errorf("literal of %d bytes ended after %d: %w", size, n, io.ErrUnexpectedEOF)
	}
	return err
}

// recCost estimates the memory a record holds.
func recCost(item imapclient.FetchItemData) int64 {
	const base = 128
	switch it := item.(type) {
	case imapclient.FetchItemDataFlags:
		return base + int64(16*len(it.Flags))
	case imapclient.FetchItemDataEnvelope:
		if it.Envelope == nil {
			return base
		}
		e := it.Envelope
		n := len(e.From) + len(e.Sender) + len(e.ReplyTo) + len(e.To) + len(e.Cc) + len(e.Bcc)
		return base + int64(len(e.Subject)+len(e.MessageID)+len(e.InReplyTo)+128*n)
	case imapclient.FetchItemDataBodyStructure:
		return base + 512*int64(countParts(it.BodyStructure))
	}
	return base
}

func countParts(bs imap.BodyStructure) int {
	switch b := bs.(type) {
	case *imap.BodyStructureMultiPart:
		n := 1
		for _, c := range b.Children {
			n += countParts(c)
		}
		return n
	case *imap.BodyStructureSinglePart:
		if b.MessageRFC822 != nil && b.MessageRFC822.BodyStructure != nil {
			return 1 + countParts(b.MessageRFC822.BodyStructure)
		}
	}
	return 1
}
