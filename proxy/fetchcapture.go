package proxy

import (
	"io"

	"github.com/emersion/go-imap/v2"
)

// fetchCapture records, while the relay relays an upstream answer, each
// item of a client's response as the client got it (name, value bytes),
// and at the end of the response hands them to keep: the FETCH cache's
// fill (fetchlocal.go). A value longer than max is not recorded (its name
// is, with a nil value), so a large body streams as before and holds no
// memory here.
type fetchCapture struct {
	max   int64
	keep  func(uid uint32, names []string, vals [][]byte)
	names []string
	vals  [][]byte
	cur   []byte
	on    bool // recording the current value
	over  bool // the current value went past max
	// odd: items came before the UID (not Dovecot's way): a response
	// built from the cache would place the UID elsewhere, so this one
	// teaches and keeps nothing.
	odd bool
}

// reset starts a response.
func (fc *fetchCapture) reset() {
	fc.names, fc.vals, fc.cur, fc.on, fc.over, fc.odd = fc.names[:0], fc.vals[:0], fc.cur[:0], false, false, false
}

// flags records a FLAGS item: its value comes from the model, not the cache.
func (fc *fetchCapture) flags() {
	fc.names = append(fc.names, "FLAGS")
	fc.vals = append(fc.vals, nil)
}

// begin starts recording the value of the item name.
func (fc *fetchCapture) begin(name string) {
	fc.names = append(fc.names, name)
	fc.cur, fc.on, fc.over = fc.cur[:0], true, false
}

// add records bytes of the current value.
func (fc *fetchCapture) add(b []byte) {
	if !fc.on || fc.over {
		return
	}
	if int64(len(fc.cur)+len(b)) > fc.max {
		fc.over, fc.cur = true, fc.cur[:0]
		return
	}
	fc.cur = append(fc.cur, b...)
}

// end closes the current value: a copy of its bytes is kept (cached
// values are shared and never modified), allocated by append so that its
// capacity is what the allocator gave it (Go's size class), which the
// cache weighs (cacheWeight).
func (fc *fetchCapture) end() {
	var v []byte
	if !fc.over && len(fc.cur) > 0 {
		v = append([]byte(nil), fc.cur...)
	} else if !fc.over {
		v = []byte{}
	}
	fc.vals = append(fc.vals, v)
	fc.on = false
}

// item records a whole item at once (the fast path's).
func (fc *fetchCapture) item(name, value []byte) {
	if string(name) == "FLAGS" {
		fc.flags()
		return
	}
	fc.begin(string(name))
	fc.add(value)
	fc.end()
}

// commit hands the response's items over.
func (fc *fetchCapture) commit(uid uint32) {
	if fc.keep != nil && !fc.odd {
		fc.keep(uid, append([]string(nil), fc.names...), append([][]byte(nil), fc.vals...))
	}
}

// tee records a literal's bytes as they stream through.
func (fc *fetchCapture) tee(r io.Reader) io.Reader {
	return captureReader{r: r, fc: fc}
}

type captureReader struct {
	r  io.Reader
	fc *fetchCapture
}

func (c captureReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.fc.add(p[:n])
	return n, err
}

// filler is a capture that records a relayed answer of upstream up to
// items (atts) into the cache: each response's item values under its UID
// (key names the account, mailbox and UIDVALIDITY), and its item names
// as the layout of items for up. The layout is learnt at the first
// response and again only when a later one disagrees (which unlearns
// it), so a command's thousand responses take the cache's lock once;
// values go to otter, which has no global lock.
func (fc *fetchCache) filler(up string, key cacheKey, items string, atts []fetchAtt) *fetchCapture {
	var learnt []string // the names the first response taught
	first, agreed := true, true
	return &fetchCapture{max: fc.maxItem, keep: func(uid uint32, names []string, vals [][]byte) {
		switch {
		case first:
			first, learnt = false, names
			fc.learn(up, items, atts, names, true)
		case agreed && !equalStrings(learnt, names):
			agreed = false
			fc.learn(up, items, atts, names, false)
		}
		for i, name := range names {
			if vals[i] != nil {
				k := key
				k.uid, k.item = imap.UID(uid), name
				fc.put(k, vals[i])
			}
		}
	}}
}
