package proxy

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// orChain is "OR k OR k ... k": n ORs nested n deep, 2n+1 keys.
func orChain(n int, key string) string {
	return strings.Repeat("OR "+key+" ", n) + key
}

func literal(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

// realClientSearches are searches real clients send (seen in their
// protocol logs and source), and a few more that exercise the syntax the
// checker must skip. None may be refused.
var realClientSearches = []struct{ name, args string }{
	{"Thunderbird quick filter", `UNDELETED OR OR OR FROM "smith" TO "smith" CC "smith" SUBJECT "smith"`},
	{"Thunderbird CHARSET literal", "CHARSET UTF-8 OR SUBJECT " + literal("über (x") + " BODY " + literal("naïve OR NOT (((")},
	{"Thunderbird match any of 30", "UNDELETED " + orChain(29, `FROM "a@example.org"`)},
	{"mutt pattern", `OR (FROM "alice") (OR (SUBJECT "report (Q3)") (NOT DELETED))`},
	{"mutt thread of 200 message-ids", orChain(199, `HEADER Message-ID "<id(1)@example.org>"`)},
	{"Apple Mail", "1:* NOT DELETED"},
	{"K-9 sync", "1:* NOT DELETED SINCE 1-Feb-2024"},
	{"Roundcube", `ALL UNDELETED OR OR OR HEADER SUBJECT "x" HEADER FROM "x" HEADER TO "x" HEADER CC "x"`},
	{"ESEARCH min max count", "RETURN (MIN MAX COUNT) UNSEEN"},
	{"ESEARCH empty return", "RETURN () ALL"},
	{"ESEARCH save and charset", "RETURN (SAVE) CHARSET US-ASCII 1:100"},
	{"SEARCHRES reference", "$ NOT SEEN"},
	{"sequence sets", "1,3:5,7:* UID 10:20,30 NOT 2"},
	{"dates", "SINCE 01-Jan-2020 BEFORE 15-Mar-2024 SENTON 2-Feb-2021 SENTBEFORE 1-Jan-2030 SENTSINCE 1-Jan-1990 ON 1-Jan-2000"},
	{"header with parentheses and escapes", `HEADER "X-Note" "a \"(q)\" b \\ (c"`},
	{"keywords", `KEYWORD $Forwarded UNKEYWORD $Junk KEYWORD \Seen`},
	{"sizes", "LARGER 1000 SMALLER 200000"},
	{"modseq plain and with entry", `MODSEQ 720162338 OR MODSEQ "/flags/\\draft" all 620162338 SEEN`},
	{"WITHIN and SAVEDATE", "YOUNGER 3600 OLDER 60 SAVEDSINCE 1-Jan-2024"},
	{"FUZZY", `FUZZY SUBJECT "hello"`},
	{"lower case", `or from "a" not to "b"`},
	{"CRLF at the end", "ALL\r\n"},
	{"depth at the limit", orChain(maxSearchDepth, "SEEN")},
	{"parentheses at the limit", strings.Repeat("(", maxSearchDepth) + "SEEN" + strings.Repeat(")", maxSearchDepth)},
	{"keys at the limit", strings.TrimSpace(strings.Repeat("SEEN ", maxSearchKeys))},
	{"many literals are not keys", strings.Repeat("BODY "+literal("OR OR ( NOT")+" ", 100) + "ALL"},
}

func TestCheckSearchAcceptsRealClients(t *testing.T) {
	for _, tt := range realClientSearches {
		if err := checkSearch([]byte(tt.args)); err != nil {
			t.Errorf("%s: checkSearch(%.80q) = %v, want nil", tt.name, tt.args, err)
		}
	}
}

func TestCheckSearchRefuses(t *testing.T) {
	tests := []struct {
		name, args string
		want       error // nil: any BAD
	}{
		{"OR chain one past the limit", orChain(maxSearchDepth+1, "SEEN"), errSearchDepth},
		{"49 KB OR chain", orChain(49*1024/8, "SEEN"), errSearchDepth},
		{"NOT chain", strings.Repeat("NOT ", maxSearchDepth+1) + "SEEN", errSearchDepth},
		{"FUZZY chain", strings.Repeat("FUZZY ", maxSearchDepth+1) + "SEEN", errSearchDepth},
		{"parentheses", strings.Repeat("(", maxSearchDepth+1) + "SEEN" + strings.Repeat(")", maxSearchDepth+1), errSearchDepth},
		{"mixed nesting", strings.Repeat("OR (NOT ", maxSearchDepth) + "SEEN", errSearchDepth},
		{"nesting behind RETURN and CHARSET", "RETURN (COUNT) CHARSET UTF-8 " + orChain(maxSearchDepth+1, "SEEN"), errSearchDepth},
		{"nesting behind a literal", "BODY " + literal("x") + " " + orChain(maxSearchDepth+1, "SEEN"), errSearchDepth},
		{"too many flat keys", strings.Repeat("1 ", maxSearchKeys+1), errSearchKeys},
		{"too many keys inside shallow ORs", strings.Repeat("OR SEEN SEEN ", maxSearchKeys/3+1), errSearchKeys},
		{"unbalanced close", "SEEN)", nil},
		{"missing close", "(SEEN", nil},
		{"close inside an OR", "(OR SEEN)", nil},
		{"unterminated quote", `SUBJECT "abc`, nil},
		{"literal too short", "SUBJECT {10+}\r\nabc", nil},
		{"literal without CRLF", "SUBJECT {3+}abc", nil},
		{"literal with bad size", "SUBJECT {x}\r\nabc", nil},
		{"RETURN without list", "RETURN MIN ALL", nil},
		{"RETURN unterminated", "RETURN (MIN", nil},
	}
	for _, tt := range tests {
		err := checkSearch([]byte(tt.args))
		var ie *imap.Error
		if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeBad || ie.Code == "" {
			t.Errorf("%s: checkSearch(%.60q) = %v, want BAD with a response code", tt.name, tt.args, err)
			continue
		}
		if tt.want != nil && err != tt.want {
			t.Errorf("%s: checkSearch(%.60q) = %v, want %v", tt.name, tt.args, err, tt.want)
		}
	}
}

// FuzzCheckSearch: whatever the bytes, checkSearch returns nil or a BAD
// with a response code, and never panics. It has no recursion to blow up
// and visits each byte a bounded number of times; the benchmark below
// shows the time per byte flat from 1 KiB to 50 KiB.
func FuzzCheckSearch(f *testing.F) {
	for _, tt := range realClientSearches {
		f.Add([]byte(tt.args))
	}
	for _, s := range []string{"", "(", ")", "{", "{5}", "{5+}\r\n", `"`, `"\`, "RETURN", "RETURN (", "CHARSET", "OR", "NOT NOT", "MODSEQ", `MODSEQ "x"`, "HEADER a"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, args []byte) {
		err := checkSearch(args)
		if err == nil {
			return
		}
		var ie *imap.Error
		if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeBad || ie.Code == "" {
			t.Fatalf("checkSearch(%q) = %v, want nil or BAD with a code", args, err)
		}
	})
}

// BenchmarkCheckSearch shows the cost linear in the input: ns/op divided
// by the size is the same for 1 KiB and 50 KiB, for the deepest input
// (refused at the limit, after a scan) and the widest (a flat list).
func BenchmarkCheckSearch(b *testing.B) {
	for _, size := range []int{1 << 10, 50 << 10} {
		inputs := map[string]string{
			"flat":    strings.Repeat(`SUBJECT "a(b" `, size/14),
			"literal": strings.Repeat("BODY "+literal(strings.Repeat("OR ", 30))+" ", size/104),
			"parens":  strings.Repeat("(SEEN) ", size/7),
		}
		for name, in := range inputs {
			b.Run(fmt.Sprintf("%s/%dKiB", name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(in)))
				for i := 0; i < b.N; i++ {
					if err := checkSearch([]byte(in)); err != nil && err != errSearchKeys {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
