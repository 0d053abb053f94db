// Package fanout holds idlemux's UID-keyed mailbox model and the per-session
// views that number it.
//
// One Mailbox exists per watched (account, mailbox). Its owner (the upstream
// watcher) applies changes in transactions; every change is also appended to
// a change log with a monotonically increasing position. A View, one per
// downstream session that selected the mailbox, is nothing but a cursor into
// that log: the session's sequence numbers are "the model as of the cursor"
// (RFC 3501 section 2.3.1.2: sequence numbers only change when the session is
// told). While every session is caught up, a view costs a few words, and no
// session ever copies the UID list.
//
// The view at cursor c is fully described by two facts, because UIDs only
// grow (RFC 3501 section 2.3.1.1) and messages are only appended at the end:
//
//   - maxUID(c): the largest UID the model had added when the log reached c.
//     Every message of the current model with a UID at or below it was
//     already there at c; every message above it was added later.
//   - extra(c): the UIDs that were present at c and expunged since.
//
// So the session's list is (model UIDs <= maxUID(c)) merged with extra(c),
// and translating a sequence number costs a binary search plus a walk of the
// (usually empty) log tail after the cursor.
package fanout
