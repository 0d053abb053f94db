package proxy

import (
	"bytes"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/idlemux/idlemux/fanout"
)

// MODSEQ in the FETCH responses idlemux writes itself (RFC 7162 3.1.4:
// once a client enabled CONDSTORE, "the server MUST include the MODSEQ
// fetch response data item in all subsequent unsolicited FETCH
// responses"; 3.1.3 for STORE's own). The value is the model's, which
// holds each message's MODSEQ as the upstream reported it with the flag
// change (fanout/modseq.go). Sessions that enabled nothing get the bytes
// they got before.

// modseqTeller is a permSource that knows whether its session enabled
// CONDSTORE (the selection does; tests' fixed sources do not).
type modseqTeller interface {
	tellsModSeq() bool
}

// tellsModSeq says whether the session enabled CONDSTORE.
func (sel *selection) tellsModSeq() bool {
	return sel.condstore != nil && sel.condstore.Load()
}

// condstoreFlag is the reader's CONDSTORE flag for the selection, nil
// when the session has no reader (tests).
func (sess *session) condstoreFlag() *atomic.Bool {
	if cc := sess.reader(); cc != nil {
		return &cc.cs.on
	}
	return nil
}

// appendFlagsUpdate encodes a flag update: "* seq FETCH (UID uid FLAGS
// (...))", and for a CONDSTORE-enabled session, where the model knows the
// message's MODSEQ, "* seq FETCH (UID uid MODSEQ (m) FLAGS (...))": the
// items in Dovecot's order (RFC 3501 7.4.2 leaves it free).
func appendFlagsUpdate(b []byte, u fanout.Update, ps permSource) []byte {
	start := len(b)
	b = appendFetchFlags(b, u.Seq, u.UID, u.Flags)
	if mt, ok := ps.(modseqTeller); !ok || u.ModSeq == 0 || !mt.tellsModSeq() {
		return b
	}
	// "FLAGS (" occurs once: no flag holds "(" (validFlag).
	at := start + bytes.Index(b[start:], []byte("FLAGS ("))
	var item [len("MODSEQ () ") + 20]byte
	return slices.Insert(b, at, appendModSeqItem(item[:0], u.ModSeq)...)
}

// appendModSeqItem appends "MODSEQ (m) " (RFC 7162 7: fetch-mod-resp),
// for an item that more items follow.
func appendModSeqItem(b []byte, modseq uint64) []byte {
	b = append(b, "MODSEQ ("...)
	b = strconv.AppendUint(b, modseq, 10)
	return append(b, ") "...)
}
