package proxy

import "testing"

// TestFetchRequestItems: what goes upstream for a client's FETCH items.
func TestFetchRequestItems(t *testing.T) {
	for _, tc := range []struct {
		name, cmd    string
		readOnly     bool
		uidCmd       bool
		wantItems    string
		wantUID      bool
		wantUIDAfter int
		wantRename   map[string]string
	}{
		{name: "macro", cmd: "a FETCH 1:* ALL\r\n", wantItems: "ALL"},
		{name: "uid fetch", cmd: "a UID FETCH 1:* (FLAGS)\r\n", uidCmd: true, wantItems: "(FLAGS)", wantUID: true},
		{name: "uid after buffered and not", cmd: "a fetch 1 (envelope FLAGS body.peek[1] uid)\r\n",
			wantItems: "(ENVELOPE FLAGS BODY.PEEK[1] UID)", wantUID: true, wantUIDAfter: 1},
		{name: "literal in a section becomes quoted", cmd: "a FETCH 1 (BODY.PEEK[HEADER.FIELDS ({8+}\r\nSub\"ject)]<0.10>)\r\n",
			wantItems: `(BODY.PEEK[HEADER.FIELDS ("Sub\"ject")]<0.10>)`},
		{name: "MODSEQ and modifiers dropped", cmd: "a FETCH 1:* (FLAGS MODSEQ) (CHANGEDSINCE 5)\r\n", wantItems: "(FLAGS)"},
		{name: "only MODSEQ", cmd: "a FETCH 1 MODSEQ\r\n", wantItems: "(UID)"},
		{name: "read-only peeks", cmd: "a FETCH 1 (BODY[TEXT] BINARY[1]<0.7> RFC822 RFC822.TEXT RFC822.HEADER BODY)\r\n", readOnly: true,
			wantItems:  "(BODY.PEEK[TEXT] BINARY.PEEK[1]<0.7> BODY.PEEK[] BODY.PEEK[TEXT] RFC822.HEADER BODY)",
			wantRename: map[string]string{"BODY[]": "RFC822", "BODY[TEXT]": "RFC822.TEXT"}},
		{name: "read-write keeps the names", cmd: "a FETCH 1 (BODY[TEXT] RFC822)\r\n", wantItems: "(BODY[TEXT] RFC822)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := fetchItemsOf([]byte(tc.cmd))
			if err != nil {
				t.Fatal(err)
			}
			atts, list, err := parseFetchItems(items)
			if err != nil {
				t.Fatalf("parseFetchItems(%q): %v", items, err)
			}
			r := newFetchRequest(atts, list, tc.uidCmd, tc.readOnly)
			if r.items != tc.wantItems || r.wantUID != tc.wantUID || r.uidAfter != tc.wantUIDAfter || len(r.rename) != len(tc.wantRename) {
				t.Errorf("got %q uid %v after %d rename %v; want %q uid %v after %d rename %v",
					r.items, r.wantUID, r.uidAfter, r.rename, tc.wantItems, tc.wantUID, tc.wantUIDAfter, tc.wantRename)
			}
			for k, v := range tc.wantRename {
				if r.rename[k] != v {
					t.Errorf("rename %s: got %q, want %q", k, r.rename[k], v)
				}
			}
		})
	}
	for _, bad := range []string{"a FETCH 1 (FLAGS", "a FETCH 1 (BODY[HEADER.FIELDS (\"x)])", "a FETCH 1 (BODY[{9}\r\nab])", "a FETCH 1 FLAGS)"} {
		items, err := fetchItemsOf([]byte(bad))
		if err == nil {
			_, _, err = parseFetchItems(items)
		}
		if err == nil {
			t.Errorf("items of %q: got no error, want one", bad)
		}
	}
}
