package imapcheck

import (
	"bufio"
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// TestParse: responses as Dovecot sends them parse to what they say, and
// what RFC 3501 9 does not allow is refused.
func TestParse(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want *Response // nil: must be refused
	}{
		{"exists", "* 23 EXISTS\r\n", &Response{Tag: "*", Num: 23, HasNum: true, Name: "EXISTS"}},
		{"expunge", "* 3 EXPUNGE\r\n", &Response{Tag: "*", Num: 3, HasNum: true, Name: "EXPUNGE"}},
		{"fetch uid flags", "* 2 FETCH (UID 7 FLAGS (\\Seen $a))\r\n", &Response{Tag: "*", Num: 2, HasNum: true, Name: "FETCH",
			Items: []FetchItem{{"UID", Value{Kind: KindNumber, Num: 7}}, {"FLAGS", Value{Kind: KindList, List: []Value{{Kind: KindAtom, Atom: `\Seen`}, {Kind: KindAtom, Atom: "$a"}}}}}}},
		{"fetch section literal", "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {4}\r\nab\r\n RFC822.SIZE 9)\r\n", &Response{Tag: "*", Num: 1, HasNum: true, Name: "FETCH",
			Items: []FetchItem{{"BODY[HEADER.FIELDS (SUBJECT)]", Value{Kind: KindString, Str: []byte("ab\r\n")}}, {"RFC822.SIZE", Value{Kind: KindNumber, Num: 9}}}}},
		{"fetch partial nil", "* 1 FETCH (BODY[]<0> NIL)\r\n", &Response{Tag: "*", Num: 1, HasNum: true, Name: "FETCH",
			Items: []FetchItem{{"BODY[]<0>", Value{Kind: KindNil}}}}},
		{"flags", "* FLAGS (\\Answered $x)\r\n", &Response{Tag: "*", Name: "FLAGS", Flags: []string{`\Answered`, "$x"}}},
		{"empty flags", "* FLAGS ()\r\n", &Response{Tag: "*", Name: "FLAGS", Flags: []string{}}},
		{"search", "* SEARCH 1 4\r\n", &Response{Tag: "*", Name: "SEARCH", Nums: []uint32{1, 4}}},
		{"empty search", "* SEARCH\r\n", &Response{Tag: "*", Name: "SEARCH"}},
		{"ok code", "* OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted.\r\n", &Response{Tag: "*", Name: "OK", Code: "PERMANENTFLAGS", CodeArg: `(\Seen \*)`, Text: "Flags permitted."}},
		{"tagged appenduid", "a1 OK [APPENDUID 9 3:4] Append completed.\r\n", &Response{Tag: "a1", Name: "OK", Code: "APPENDUID", CodeArg: "9 3:4", Text: "Append completed."}},
		{"tagged no", "a.2 NO [EXPUNGEISSUED] gone\r\n", &Response{Tag: "a.2", Name: "NO", Code: "EXPUNGEISSUED", Text: "gone"}},
		{"continuation", "+ idling\r\n", &Response{Tag: "+", Text: "idling"}},
		{"list", "* LIST (\\HasNoChildren) \".\" INBOX\r\n", &Response{Tag: "*", Name: "LIST", Args: []Value{
			{Kind: KindList, List: []Value{{Kind: KindAtom, Atom: `\HasNoChildren`}}}, {Kind: KindString, Str: []byte(".")}, {Kind: KindAtom, Atom: "INBOX"}}}},
		{"no CRLF", "* 1 EXISTS\n", nil},
		{"trailing bytes", "* 1 EXISTS\r\nx", nil},
		{"fetch of 0", "* 0 FETCH (UID 1)\r\n", nil},
		{"uid 0", "* 1 FETCH (UID 0)\r\n", nil},
		{"unclosed fetch", "* 1 FETCH (UID 1\r\n", nil},
		{"unknown numbered", "* 1 FROB\r\n", nil},
		{"search 0", "* SEARCH 0\r\n", nil},
		{"literal past end", "* 1 FETCH (BODY[] {9}\r\nab)\r\n", nil},
		{"NUL in literal", "* 1 FETCH (BODY[] {1}\r\n\x00)\r\n", nil},
		{"bad escape", "* LIST () \"\\a\" x\r\n", nil},
		{"tagged without status", "a1 FETCH\r\n", nil},
		{"number past 32 bits", "* 4294967296 EXISTS\r\n", nil},
		{"double space", "* 1 FETCH (UID 1  FLAGS ())\r\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.raw))
			if tt.want == nil {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, want an error", tt.raw, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.raw, err)
			}
			tt.want.Raw = []byte(tt.raw)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q):\ngot  %+v\nwant %+v", tt.raw, got, tt.want)
			}
		})
	}
}

// TestReadResponse: a response with literals is read whole, and the next
// one after it.
func TestReadResponse(t *testing.T) {
	in := "* 1 FETCH (BODY[] {5}\r\na\r\nbc UID 3)\r\na OK done\r\n"
	r := bufio.NewReader(strings.NewReader(in))
	got, _, err := ReadResponse(r, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := got.Item("BODY[]"); string(v.Str) != "a\r\nbc" {
		t.Errorf("got BODY[] %q, want %q", v.Str, "a\r\nbc")
	}
	if got, _, err = ReadResponse(r, 1<<10); err != nil || got.Tag != "a" {
		t.Errorf("got %+v, %v; want the tagged OK", got, err)
	}
	if _, _, err := ReadResponse(bufio.NewReader(strings.NewReader("* 1 FETCH (BODY[] {100}\r\n")), 50); err != ErrTooLong {
		t.Errorf("got %v for a literal past the limit, want ErrTooLong", err)
	}
}

// FuzzParse: Parse never panics, and what it accepts it accepts again
// from ReadResponse, which frames the same bytes by their literals.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"* 23 EXISTS\r\n", "* 2 FETCH (UID 7 FLAGS (\\Seen $a))\r\n",
		"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {4}\r\nab\r\n RFC822.SIZE 9)\r\n",
		"* OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted.\r\n", "a1 OK [APPENDUID 9 3:4] done\r\n",
		"+ idling\r\n", "* SEARCH 1 4 (MODSEQ 7)\r\n", "* LIST (\\HasNoChildren) \".\" \"a\\\\b\"\r\n",
		"* 1 FETCH (BINARY[1] ~{2}\r\n\x00a)\r\n", "* STATUS INBOX (MESSAGES 2 UIDNEXT 9)\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := Parse(raw)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Raw, raw) {
			t.Fatalf("Raw %q, input %q", r.Raw, raw)
		}
		r2, raw2, err := ReadResponse(bufio.NewReader(bytes.NewReader(raw)), len(raw)+1)
		if err != nil || !bytes.Equal(raw2, raw) || !reflect.DeepEqual(r, r2) {
			t.Fatalf("ReadResponse of %q: %v, read %q", raw, err, raw2)
		}
	})
}
