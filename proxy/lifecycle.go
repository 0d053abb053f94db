package proxy

import (
	"context"
	"strings"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/upstream"
	"github.com/idlemux/idlemux/upstream/quirks"
)

// mailboxGone ends what the account knows of name (and of the mailboxes
// below it when delim is not 0): after DELETE or RENAME (RFC 3501 6.3.4,
// 6.3.5), after a CREATE (the name did not exist a moment ago, RFC 3501
// 6.3.3), or after an answer saying it does not exist. Every session with
// it selected is told on its next command; this session's own command
// still gets its tagged answer first, as on Dovecot.
func (sess *session) mailboxGone(op, name string, delim rune) {
	name = canonical(name)
	sess.acct.MailboxGone(name, delim)
	sel := sess.sel
	if sel == nil || (sel.name != name && (delim == 0 || !strings.HasPrefix(sel.name, name+string(delim)))) {
		return
	}
	sel.holdGone = true
	if op == "DELETE" && sel.name == name {
		sel.goneText = quirks.ByeOwnMailboxGone
	}
}

// noteMissing ends what the account knows of name when the upstream just
// said it does not exist (NONEXISTENT, or TRYCREATE on APPEND, COPY,
// MOVE: RFC 3501 6.3.11, 6.4.7): a watcher or pool connection may still
// show a deleted mailbox by that name.
func (sess *session) noteMissing(op, name string, err error) {
	if upstream.MailboxMissing(err) {
		sess.mailboxGone(op, name, 0)
	}
}

// syncMailboxes brings a completed change to the named mailboxes into
// their models before the command's tagged OK, so that every session with
// one of them selected (the actor included) sees the change on its next
// command, as it would on the upstream itself (RFC 3501 7: a server sends
// the updates at any command). Only watchers already running are asked;
// concurrent requests share one NOOP of the watcher (Watcher.Sync).
//
// It first counts the change (upstream/changes.go): a later read that
// would answer from a model or share an upstream STATUS waits for it.
func (sess *session) syncMailboxes(names ...string) {
	canon := make([]string, len(names))
	for i, name := range names {
		canon[i] = canonical(name)
	}
	sess.acct.Changed(canon...)
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	for i, name := range names {
		name = canonical(name)
		if i > 0 && canonical(names[0]) == name {
			continue
		}
		w := sess.acct.Watching(name)
		if w == nil {
			continue
		}
		if err := w.Sync(ctx); err != nil {
			sess.acct.Unconfirmed(name)
			sess.log.Warn("mailbox watcher did not confirm the change in time", zap.String("changed", name), zap.Error(err))
		}
	}
}

// hierarchyDelim asks the upstream for its hierarchy delimiter (RFC 3501
// 6.3.8, LIST with an empty pattern); 0 when it has none or does not say.
func hierarchyDelim(c *upstream.Conn) (rune, error) {
	list, err := c.List("", "", nil).Collect()
	if err != nil || len(list) == 0 {
		return 0, err
	}
	return list[0].Delim, nil
}

// listDelimData is the personal namespace derived from the delimiter, for
// an upstream without NAMESPACE (RFC 2342).
func listDelimData(c *upstream.Conn) (*imap.NamespaceData, error) {
	delim, err := hierarchyDelim(c)
	if err != nil {
		return nil, err
	}
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: delim}}}, nil
}
