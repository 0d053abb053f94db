package proxy

import (
	"fmt"
	"strings"

	"github.com/idlemux/idlemux/internal/imapcheck"
)

// ckSystemFlags are the flags every worker may set and clear; \Deleted
// is only ever added, and only before an EXPUNGE of the worker's own.
var ckSystemFlags = []string{`\Seen`, `\Flagged`, `\Answered`, `\Draft`}

// ckOp is one kind of random operation and its weight.
type ckOp struct {
	weight int
	run    func(w *ckWorker)
}

var ckOps = []ckOp{
	{12, (*ckWorker).opAppend},
	{20, (*ckWorker).opStore},
	{4, (*ckWorker).opExpunge},
	{6, (*ckWorker).opCopy},
	{5, (*ckWorker).opMove},
	{12, (*ckWorker).opFetch},
	{6, (*ckWorker).opSearch},
	{10, (*ckWorker).opNoop},
	{3, (*ckWorker).opIdle},
}

// step runs one random operation, then learns the UIDs of new numbers.
func (w *ckWorker) step() {
	total := 0
	for _, op := range ckOps {
		total += op.weight
	}
	n := w.rng.Intn(total)
	for _, op := range ckOps {
		if n < op.weight {
			if w.s.Count() > 40 {
				w.opExpunge()
			} else {
				op.run(w)
			}
			break
		}
		n -= op.weight
	}
	w.fill()
}

// seqs picks 1 to 3 numbers of the view as a sequence set; ok is false
// for an empty view.
func (w *ckWorker) seqs() (set string, nums []uint32, ok bool) {
	n := w.s.Count()
	if n == 0 {
		return "", nil, false
	}
	var parts []string
	for range 1 + w.rng.Intn(3) {
		k := uint32(1 + w.rng.Intn(n))
		nums = append(nums, k)
		parts = append(parts, fmt.Sprint(k))
	}
	return strings.Join(parts, ","), nums, true
}

// uidsOf picks 1 to 3 known UIDs of the view.
func (w *ckWorker) uidsOf() (set string, uids []uint32, ok bool) {
	var known []uint32
	for _, u := range w.s.UIDs() {
		if u != 0 {
			known = append(known, u)
		}
	}
	if len(known) == 0 {
		return "", nil, false
	}
	var parts []string
	for range 1 + w.rng.Intn(3) {
		u := known[w.rng.Intn(len(known))]
		uids = append(uids, u)
		parts = append(parts, fmt.Sprint(u))
	}
	return strings.Join(parts, ","), uids, true
}

// pickSet picks, at random, 1 to 3 numbers or UIDs of the view for c.
func (w *ckWorker) pickSet(c *imapcheck.Command) (set string, ok bool) {
	if w.rng.Intn(2) == 0 {
		set, c.Seqs, ok = w.seqs()
		return set, ok
	}
	c.UID = true
	set, c.UIDs, ok = w.uidsOf()
	return set, ok
}

func (w *ckWorker) someFlags() []string {
	var fs []string
	if w.rng.Intn(2) == 0 {
		fs = append(fs, ckSystemFlags[w.rng.Intn(len(ckSystemFlags))])
	}
	if len(fs) == 0 || w.rng.Intn(2) == 0 {
		fs = append(fs, w.kws[w.rng.Intn(len(w.kws))])
	}
	return fs
}

func (w *ckWorker) opAppend() {
	self := w.rng.Intn(6) != 0
	box := "INBOX"
	if !self {
		box = "Other"
	}
	msg := []byte(testMessage(fmt.Sprintf("%s %d", w.name, w.tags)) + strings.Repeat("body line\r\n", w.rng.Intn(20)))
	flags := ""
	var fs []string
	if w.rng.Intn(2) == 0 {
		fs = w.someFlags()
		flags = "(" + strings.Join(fs, " ") + ") "
	}
	w.cmd(imapcheck.Command{Name: "APPEND", Self: self, Flags: fs},
		fmt.Sprintf("APPEND %s %s{%d}", box, flags, len(msg)), msg)
}

func (w *ckWorker) opStore() {
	c := imapcheck.Command{Name: "STORE", Store: &imapcheck.Store{Add: w.rng.Intn(3) != 0, Silent: w.rng.Intn(3) == 0, Flags: w.someFlags()}}
	set, ok := w.pickSet(&c)
	if !ok {
		w.opAppend()
		return
	}
	item := map[bool]string{true: "+FLAGS", false: "-FLAGS"}[c.Store.Add]
	if c.Store.Silent {
		item += ".SILENT"
	}
	line := fmt.Sprintf("STORE %s %s (%s)", set, item, strings.Join(c.Store.Flags, " "))
	if c.UID {
		line = "UID " + line
	}
	w.cmd(c, line, nil)
}

// opExpunge deletes a few messages: by UID STORE and UID EXPUNGE of just
// those (RFC 4315 2.1), or STORE and a plain EXPUNGE.
func (w *ckWorker) opExpunge() {
	set, uids, ok := w.uidsOf()
	if !ok {
		w.opAppend()
		return
	}
	w.cmd(imapcheck.Command{Name: "STORE", UID: true, UIDs: uids, Store: &imapcheck.Store{Add: true, Silent: true, Flags: []string{`\Deleted`}}},
		fmt.Sprintf("UID STORE %s +FLAGS.SILENT (\\Deleted)", set), nil)
	if w.rng.Intn(2) == 0 {
		w.cmd(imapcheck.Command{Name: "EXPUNGE", UID: true, UIDs: uids}, "UID EXPUNGE "+set, nil)
		return
	}
	w.cmd(imapcheck.Command{Name: "EXPUNGE"}, "EXPUNGE", nil)
}

func (w *ckWorker) opCopy() { w.copyMove("COPY") }
func (w *ckWorker) opMove() { w.copyMove("MOVE") }

func (w *ckWorker) copyMove(name string) {
	c := imapcheck.Command{Name: name, Self: w.rng.Intn(2) == 0}
	box := "Other"
	if c.Self {
		box = "INBOX"
	}
	set, ok := w.pickSet(&c)
	if !ok {
		w.opAppend()
		return
	}
	line := fmt.Sprintf("%s %s %s", name, set, box)
	if c.UID {
		line = "UID " + line
	}
	w.cmd(c, line, nil)
}

func (w *ckWorker) opFetch() {
	n := w.s.Count()
	if n == 0 {
		w.opNoop()
		return
	}
	k := 1 + w.rng.Intn(n)
	switch w.rng.Intn(5) {
	case 0:
		w.cmd(imapcheck.Command{Name: "FETCH"}, "FETCH 1:* (UID FLAGS)", nil)
	case 1:
		w.cmd(imapcheck.Command{Name: "FETCH"}, fmt.Sprintf("FETCH %d (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)", k), nil)
	case 2:
		w.cmd(imapcheck.Command{Name: "FETCH"}, fmt.Sprintf("FETCH %d BODY[]", k), nil)
	case 3:
		w.cmd(imapcheck.Command{Name: "FETCH"}, fmt.Sprintf("FETCH %d:%d (FLAGS)", k, n), nil)
	default:
		set, uids, _ := w.uidsOf()
		if set == "" {
			set = "1:*"
		}
		w.cmd(imapcheck.Command{Name: "FETCH", UID: true, UIDs: uids}, "UID FETCH "+set+" (FLAGS)", nil)
	}
}

func (w *ckWorker) opSearch() {
	kw := w.kws[w.rng.Intn(len(w.kws))]
	switch w.rng.Intn(4) {
	case 0:
		w.cmd(imapcheck.Command{Name: "SEARCH"}, "SEARCH ALL", nil)
	case 1:
		w.cmd(imapcheck.Command{Name: "SEARCH"}, "SEARCH KEYWORD "+kw, nil)
	case 2:
		w.cmd(imapcheck.Command{Name: "SEARCH"}, "SEARCH UNSEEN", nil)
	default:
		w.cmd(imapcheck.Command{Name: "SEARCH", UID: true}, "UID SEARCH ALL", nil)
	}
}

func (w *ckWorker) opNoop() { w.cmd(imapcheck.Command{Name: "NOOP"}, "NOOP", nil) }
func (w *ckWorker) opIdle() { w.cmd(imapcheck.Command{Name: "IDLE"}, "IDLE", nil) }
