package imapcheck

import (
	"maps"
	"strings"
	"testing"
)

// script feeds a session a hand-written exchange: "C: tag" lines begin
// the next command of cmds, "S: " lines are responses (a tagged one ends
// the command).
func script(t *testing.T, s *Session, cmds []Command, lines string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "C: "):
			s.Begin(strings.TrimPrefix(l, "C: "), cmds[0])
			cmds = cmds[1:]
		case strings.HasPrefix(l, "S: "):
			r, err := Parse([]byte(strings.TrimPrefix(l, "S: ") + "\r\n"))
			if err != nil {
				t.Fatalf("test script: %v", err)
			}
			if r.Tag == "*" || r.Tag == "+" {
				s.Receive(r)
			} else {
				s.End(r)
			}
		default:
			t.Fatalf("test script line %q", l)
		}
	}
}

var (
	noop   = Command{Name: "NOOP", Line: "NOOP"}
	fetch  = Command{Name: "FETCH", Line: "FETCH"}
	search = Command{Name: "SEARCH", Line: "SEARCH"}
)

func store(add bool, flags ...string) Command {
	return Command{Name: "STORE", Seqs: []uint32{1}, Store: &Store{Add: add, Flags: flags}, Line: "STORE 1"}
}

// TestCheckerCatches feeds streams with one known violation each and
// asserts the checker counts exactly that one, and a clean stream none.
func TestCheckerCatches(t *testing.T) {
	sel := "C: s\nS: * FLAGS (\\Seen \\Deleted $a)\nS: * 2 EXISTS\nS: s OK done\nC: f\nS: * 1 FETCH (UID 5 FLAGS ())\nS: * 2 FETCH (UID 6 FLAGS ())\nS: f OK done\n"
	selCmds := []Command{{Name: "SELECT"}, fetch}
	final56 := map[uint32][]string{5: nil, 6: nil}
	tests := []struct {
		name  string
		cmds  []Command // after the SELECT and FETCH of sel
		a     string    // session a's script after sel
		b     string    // session b's script after sel, run after a's
		final map[uint32][]string
		// finish: compare the views with final too (else only the
		// deferred violations are settled against it)
		finish bool
		want   map[Rule]int
	}{
		{name: "clean", cmds: []Command{noop, store(true, "$a")},
			a:     "C: n\nS: * 3 EXISTS\nS: * 1 EXPUNGE\nS: n OK\nC: t\nS: * 1 FETCH (FLAGS ($a))\nS: t OK",
			final: map[uint32][]string{6: {"$a"}}, want: map[Rule]int{}},
		{name: "fetch beyond the view", cmds: []Command{fetch},
			a: "C: x\nS: * 3 FETCH (UID 9)\nS: x OK", want: map[Rule]int{FetchRange: 1}},
		{name: "search beyond the view", cmds: []Command{search},
			a: "C: x\nS: * SEARCH 1 3\nS: x OK", want: map[Rule]int{SearchRange: 1}},
		{name: "uid search result not in the view", cmds: []Command{{Name: "SEARCH", UID: true}},
			a: "C: x\nS: * SEARCH 5 4\nS: x OK", want: map[Rule]int{SearchRange: 1}},
		{name: "expunge of a number not there", cmds: []Command{noop},
			a: "C: x\nS: * 3 EXPUNGE\nS: x OK", want: map[Rule]int{ExpungeRange: 1}},
		{name: "exists shrinks", cmds: []Command{noop},
			a: "C: x\nS: * 1 EXISTS\nS: x OK", want: map[Rule]int{ExistsShrink: 1}},
		{name: "uid of a number changes", cmds: []Command{fetch},
			a: "C: x\nS: * 1 FETCH (UID 7)\nS: x OK", want: map[Rule]int{UIDStable: 1}},
		{name: "uids out of order", cmds: []Command{noop, fetch},
			a: "C: n\nS: * 3 EXISTS\nS: n OK\nC: x\nS: * 3 FETCH (UID 4)\nS: x OK", want: map[Rule]int{UIDStable: 1}},
		{name: "expunge during fetch", cmds: []Command{fetch},
			a: "C: x\nS: * 1 EXPUNGE\nS: x OK", want: map[Rule]int{ExpungeInFetch: 1}},
		{name: "expunge during uid fetch is fine", cmds: []Command{{Name: "FETCH", UID: true}},
			a: "C: x\nS: * 1 EXPUNGE\nS: x OK", want: map[Rule]int{}},
		{name: "keyword without FLAGS", cmds: []Command{fetch},
			a: "C: x\nS: * 1 FETCH (FLAGS ($new))\nS: x OK", want: map[Rule]int{KeywordInFlags: 1}},
		{name: "valid command refused", cmds: []Command{fetch},
			a: "C: x\nS: x BAD [CLIENTBUG] Invalid message sequence number", want: map[Rule]int{BadAnswer: 1}},
		{name: "expunged elsewhere is not a refusal", cmds: []Command{fetch},
			a: "C: x\nS: x NO [EXPUNGEISSUED] gone", want: map[Rule]int{}},
		{name: "own append not in the view", cmds: []Command{{Name: "APPEND", Self: true}},
			a:     "C: x\nS: x OK [APPENDUID 1 7] done",
			final: map[uint32][]string{5: nil, 6: nil, 7: nil}, want: map[Rule]int{OwnWrite: 1}},
		{name: "own append expunged unseen stands down", cmds: []Command{{Name: "APPEND", Self: true}},
			a: "C: x\nS: x OK [APPENDUID 1 7] done", want: map[Rule]int{}},
		{name: "own store echo wrong", cmds: []Command{store(true, "$a")},
			a: "C: x\nS: * 1 FETCH (FLAGS ())\nS: x OK", want: map[Rule]int{OwnWrite: 1}},
		{name: "own store without echo", cmds: []Command{store(true, "$a"), store(false, "$a")},
			a: "C: x\nS: * 1 FETCH (FLAGS ($a))\nS: x OK\nC: y\nS: y OK", want: map[Rule]int{OwnWrite: 1}},
		{name: "store that changes nothing needs no echo", cmds: []Command{store(true, "$a"), store(true, "$a")},
			a: "C: x\nS: * 1 FETCH (FLAGS ($a))\nS: x OK\nC: y\nS: y OK", want: map[Rule]int{}},
		{name: "own move leaves the source", cmds: []Command{{Name: "MOVE", Seqs: []uint32{1}}},
			a: "C: x\nS: x OK [COPYUID 1 5 1] done", want: map[Rule]int{OwnWrite: 1}},
		{name: "expunge leaves a deleted message", cmds: []Command{store(true, "\\Deleted"), {Name: "EXPUNGE"}},
			a:     "C: t\nS: * 1 FETCH (FLAGS (\\Deleted))\nS: t OK\nC: x\nS: x OK",
			final: map[uint32][]string{5: {`\Deleted`}, 6: nil}, want: map[Rule]int{OwnWrite: 1}},
		{name: "other's append unseen after NOOP", cmds: []Command{{Name: "APPEND", Self: true}, noop},
			a:     "C: x\nS: * 3 EXISTS\nS: x OK [APPENDUID 1 7] done",
			b:     "C: n\nS: n OK",
			final: map[uint32][]string{5: nil, 6: nil, 7: nil}, want: map[Rule]int{OthersWrite: 1}},
		{name: "other's expunge unseen after NOOP", cmds: []Command{noop, noop},
			a: "C: x\nS: * 1 EXPUNGE\nS: x OK", b: "C: n\nS: n OK",
			final: map[uint32][]string{6: nil}, want: map[Rule]int{OthersWrite: 1}},
		{name: "other's keyword unseen after NOOP", cmds: []Command{store(true, "$a"), noop},
			a: "C: x\nS: * 1 FETCH (FLAGS ($a))\nS: x OK", b: "C: n\nS: n OK",
			final: map[uint32][]string{5: {"$a"}, 6: nil}, want: map[Rule]int{OthersWrite: 1}},
		{name: "final state matches", finish: true, want: map[Rule]int{}},
		{name: "final flags differ", finish: true, final: map[uint32][]string{5: {`\Seen`}, 6: nil},
			want: map[Rule]int{FinalState: 2}},
		{name: "final uids differ", finish: true, final: map[uint32][]string{5: nil},
			want: map[Rule]int{FinalState: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHub()
			a, b := h.NewSession("a", "$a"), h.NewSession("b")
			script(t, a, selCmds, sel)
			script(t, b, selCmds, sel)
			n := strings.Count(tt.a, "C: ")
			if tt.a != "" {
				script(t, a, tt.cmds[:n], tt.a)
			}
			if tt.b != "" {
				script(t, b, tt.cmds[n:], tt.b)
			}
			final := tt.final
			if final == nil {
				final = final56
			}
			if tt.finish {
				h.Finish(final)
			} else {
				h.mu.Lock()
				h.settle(final)
				h.mu.Unlock()
			}
			got := h.Counts()
			maps.DeleteFunc(got, func(_ Rule, n int) bool { return n == 0 })
			if !maps.Equal(got, tt.want) {
				t.Errorf("got violations %v, want %v\n%s", got, tt.want, strings.Join(allExamples(h), "\n"))
			}
		})
	}
}

func allExamples(h *Hub) []string {
	var out []string
	for _, r := range AllRules {
		out = append(out, h.Examples(r)...)
	}
	return out
}

// TestMalformedCounted: a response the parser refuses is a violation.
func TestMalformedCounted(t *testing.T) {
	h := NewHub()
	s := h.NewSession("a")
	raw := []byte("* 1 FETCH (UID 0)\r\n")
	_, err := Parse(raw)
	if err == nil {
		t.Fatal("Parse accepted UID 0")
	}
	s.Malformed(raw, err)
	if got := h.Counts()[Malformed]; got != 1 {
		t.Errorf("got %d malformed, want 1", got)
	}
}

// TestTargetMailbox: the other mailbox must hold exactly what completed
// APPEND, COPY and MOVE into it created, with the flags they must carry,
// and read the same through the server as directly.
func TestTargetMailbox(t *testing.T) {
	appendF := Command{Name: "APPEND", Flags: []string{"$a", `\Seen`}, Line: "APPEND Other ($a \\Seen)"}
	cp := Command{Name: "COPY", Seqs: []uint32{1}, Line: "COPY 1 Other"}
	sel := "C: s\nS: * FLAGS (\\Seen \\Deleted $a)\nS: * 2 EXISTS\nS: s OK done\nC: f\nS: * 1 FETCH (UID 5 FLAGS ())\nS: * 2 FETCH (UID 6 FLAGS ())\nS: f OK done\n"
	tests := []struct {
		name        string
		cmds        []Command
		a           string
		final, seen map[uint32][]string // seen nil: as final
		want        int
	}{
		{name: "append and copy there", cmds: []Command{appendF, store(true, "$a"), cp},
			a:     "C: a\nS: a OK [APPENDUID 9 1] done\nC: t\nS: * 1 FETCH (FLAGS ($a))\nS: t OK\nC: c\nS: c OK [COPYUID 9 5 2] done",
			final: map[uint32][]string{1: {"$a", `\Seen`, `\Recent`}, 2: {"$a", `\Flagged`}}},
		{name: "append flags lost", cmds: []Command{appendF},
			a: "C: a\nS: a OK [APPENDUID 9 1] done", final: map[uint32][]string{1: {"$a"}}, want: 1},
		{name: "copy loses the copier's keyword", cmds: []Command{store(true, "$a"), cp},
			a:     "C: t\nS: * 1 FETCH (FLAGS ($a))\nS: t OK\nC: c\nS: c OK [COPYUID 9 5 2] done",
			final: map[uint32][]string{2: nil}, want: 1},
		{name: "copy made twice", cmds: []Command{cp},
			a: "C: c\nS: c OK [COPYUID 9 5 2] done", final: map[uint32][]string{2: nil, 3: nil}, want: 1},
		{name: "refused copy created one", cmds: []Command{cp},
			a: "C: c\nS: c NO [EXPUNGEISSUED] gone", final: map[uint32][]string{2: nil}, want: 1},
		{name: "completed copy missing", cmds: []Command{cp},
			a: "C: c\nS: c OK [COPYUID 9 5 2] done", final: map[uint32][]string{}, want: 1},
		{name: "server shows other flags", cmds: []Command{cp},
			a:     "C: c\nS: c OK [COPYUID 9 5 2] done",
			final: map[uint32][]string{2: nil}, seen: map[uint32][]string{2: {`\Seen`}}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHub()
			a := h.NewSession("a", "$a")
			script(t, a, []Command{{Name: "SELECT"}, fetch}, sel)
			script(t, a, tt.cmds, tt.a)
			seen := tt.seen
			if seen == nil {
				seen = tt.final
			}
			h.FinishTarget(tt.final, seen)
			if got := h.Counts()[TargetState]; got != tt.want {
				t.Errorf("got %d target-mailbox violations, want %d\n%s", got, tt.want, strings.Join(allExamples(h), "\n"))
			}
		})
	}
}
