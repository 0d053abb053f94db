package demo

import (
	"fmt"
	"strings"
	"time"
)

// seed is the content of the messages INBOX starts with.
var seed = []struct{ from, subject, body string }{
	{"Alice Example <alice@example.org>", "Welcome to idlemux", "Hi!\n\nThis INBOX lives in the demo upstream inside idlemux.\nEvery few seconds another message arrives; IDLE through the proxy to see it pushed."},
	{"Bob Example <bob@example.org>", "Lunch on Friday?", "Are we still on for Friday?\n\n-- Bob"},
	{"idlemux <noreply@idlemux.invalid>", "How the demo works", "The proxy holds one IDLE per mailbox upstream and fans changes out\nto every client watching that mailbox."},
}

func seedMessages(now time.Time) [][]byte {
	out := make([][]byte, len(seed))
	for i, s := range seed {
		out[i] = message(i+1, s.from, s.subject, s.body, now.Add(time.Duration(i-len(seed))*time.Hour))
	}
	return out
}

// newMessage is the n-th message, delivered at now by the ticker.
func newMessage(n int, now time.Time) []byte {
	return message(n, "Demo Ticker <ticker@example.org>", fmt.Sprintf("Demo message #%d", n),
		fmt.Sprintf("This message was appended at %s.\nIf you are IDLEing on INBOX you were told about it right away.", now.Format(time.RFC1123Z)), now)
}

// message renders a small RFC 5322 message with CRLF line endings.
func message(n int, from, subject, body string, date time.Time) []byte {
	var b strings.Builder
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("Date", date.Format(time.RFC1123Z))
	header("From", from)
	header("To", "Demo User <demo@example.org>")
	header("Subject", subject)
	header("Message-ID", fmt.Sprintf("<demo-%d-%d@idlemux.invalid>", n, date.UnixNano()))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "7bit")
	b.WriteString("\r\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	b.WriteString("\r\n")
	return []byte(b.String())
}
