package quirks

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func capSet(caps ...imap.Cap) imap.CapSet {
	s := imap.CapSet{}
	for _, c := range caps {
		s[c] = struct{}{}
	}
	return s
}

// dovecotCaps are Debian Dovecot 2.3.19's post-login capabilities
// (../shared/notes/dovecot.md), the reference upstream.
var dovecotCaps = capSet("IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "SORT", "NAMESPACE",
	"UIDPLUS", "LIST-EXTENDED", "CONDSTORE", "QRESYNC", "ESEARCH", "LIST-STATUS", "BINARY", "MOVE", "LITERAL+", "NOTIFY", "UNSELECT", "CHILDREN")

func TestHas(t *testing.T) {
	tests := []struct {
		name string
		caps imap.CapSet
		f    Feature
		want bool
	}{
		{"IDLE listed", capSet("IMAP4rev1", "IDLE"), Idle, true},
		{"IDLE by IMAP4rev2", capSet("IMAP4rev2"), Idle, true},
		{"no IDLE", capSet("IMAP4rev1"), Idle, false},
		{"MOVE listed", capSet("IMAP4rev1", "MOVE"), Move, true},
		{"MOVE by IMAP4rev2", capSet("IMAP4rev2"), Move, true},
		{"UIDPLUS gives UID EXPUNGE", capSet("IMAP4rev1", "UIDPLUS"), UIDExpunge, true},
		{"IMAP4rev2 gives UID EXPUNGE", capSet("IMAP4rev2"), UIDExpunge, true},
		{"MOVE alone gives no UID EXPUNGE", capSet("IMAP4rev1", "MOVE"), UIDExpunge, false},
		{"CONDSTORE listed", capSet("IMAP4rev1", "CONDSTORE"), CondStore, true},
		{"QRESYNC implies CONDSTORE", capSet("IMAP4rev1", "QRESYNC"), CondStore, true},
		{"IMAP4rev2 has no CONDSTORE", capSet("IMAP4rev2"), CondStore, false},
		{"NAMESPACE by IMAP4rev2", capSet("IMAP4rev2"), Namespace, true},
		{"no NAMESPACE", capSet("IMAP4rev1"), Namespace, false},
		{"BINARY", capSet("IMAP4rev1", "BINARY"), Binary, true},
		{"SPECIAL-USE", capSet("IMAP4rev1", "SPECIAL-USE"), SpecialUse, true},
		{"LOGINDISABLED", capSet("IMAP4rev1", "LOGINDISABLED"), LoginDisabled, true},
		{"LITERAL- is not LITERAL+", capSet("IMAP4rev1", "LITERAL-"), UTF8Names, false},
		{"Dovecot idles", dovecotCaps, Idle, true},
		{"Dovecot moves", dovecotCaps, Move, true},
		{"Dovecot has CONDSTORE", dovecotCaps, CondStore, true},
		{"Dovecot names in UTF-8 too", dovecotCaps, UTF8Names, true},
		{"Dovecot lacks SPECIAL-USE by default", dovecotCaps, SpecialUse, false},
		{"Dovecot notifies", dovecotCaps, Notify, true},
		{"no NOTIFY", capSet("IMAP4rev2"), Notify, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Has(tt.caps, tt.f); got != tt.want {
				t.Errorf("Has(%s): got %v, want %v", features[tt.f].name, got, tt.want)
			}
		})
	}
}

// TestFeatureTable: every feature has a row with a capability and a
// cited source, so a new one cannot be added without saying why.
func TestFeatureTable(t *testing.T) {
	for f, row := range features {
		if row.name == "" || len(row.anyOf) == 0 || row.source == "" {
			t.Errorf("feature %d: got row %+v, want a name, capabilities and a source", f, row)
		}
	}
}

func TestMoveBy(t *testing.T) {
	tests := []struct {
		name string
		caps imap.CapSet
		want MoveMethod
	}{
		{"MOVE", capSet("IMAP4rev1", "MOVE"), MoveCommand},
		{"MOVE and UIDPLUS", capSet("IMAP4rev1", "MOVE", "UIDPLUS"), MoveCommand},
		{"IMAP4rev2", capSet("IMAP4rev2"), MoveCommand},
		{"UIDPLUS only", capSet("IMAP4rev1", "UIDPLUS"), MoveByCopy},
		{"neither", capSet("IMAP4rev1"), MoveRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MoveBy(tt.caps); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLoginBy(t *testing.T) {
	tests := []struct {
		name string
		caps imap.CapSet
		mech string
		want LoginMethod
	}{
		{"password", capSet("IMAP4rev1"), "", LoginCommand},
		{"password, LOGINDISABLED", capSet("IMAP4rev1", "LOGINDISABLED"), "", AuthPlain},
		{"xoauth2", capSet("IMAP4rev1"), MechXOAUTH2, AuthXOAUTH2},
		{"xoauth2 beats LOGINDISABLED", capSet("IMAP4rev1", "LOGINDISABLED"), MechXOAUTH2, AuthXOAUTH2},
		{"oauthbearer", capSet("IMAP4rev1"), MechOAUTHBEARER, AuthOAUTHBEARER},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LoginBy(tt.caps, tt.mech); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResponseCodes(t *testing.T) {
	tests := []struct {
		code                         imap.ResponseCode
		transient, rejected, missing bool
	}{
		{imap.ResponseCodeUnavailable, true, false, false},
		{imap.ResponseCodeServerBug, true, false, false},
		{imap.ResponseCodeInUse, true, false, false},
		{imap.ResponseCodeLimit, true, false, false},
		{imap.ResponseCodeAuthenticationFailed, false, true, false},
		{imap.ResponseCodeAuthorizationFailed, false, true, false},
		{imap.ResponseCodeExpired, false, true, false},
		{imap.ResponseCodeAlert, false, false, false}, // Gmail's bare NO [ALERT]: neither
		{"", false, false, false},
		{imap.ResponseCodeNonExistent, false, false, true},
		{imap.ResponseCodeTryCreate, false, false, true},
		{imap.ResponseCodeCannot, false, false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.code), func(t *testing.T) {
			if got := Transient(tt.code); got != tt.transient {
				t.Errorf("Transient: got %v, want %v", got, tt.transient)
			}
			if got := CredentialsRejected(tt.code); got != tt.rejected {
				t.Errorf("CredentialsRejected: got %v, want %v", got, tt.rejected)
			}
			if got := MailboxMissing(tt.code); got != tt.missing {
				t.Errorf("MailboxMissing: got %v, want %v", got, tt.missing)
			}
		})
	}
}

func TestIDWelcome(t *testing.T) {
	tests := []struct {
		name, greeting string
		want           bool
	}{
		{"Dovecot's", "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] Dovecot (Debian) ready.\r\n", true},
		{"no list", "* OK ready\r\n", true},
		{"list without ID", "* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n", false},
		{"ID as a prefix only", "* OK [CAPABILITY IMAP4rev1 IDX] hi\r\n", false},
		{"lower case", "* ok [capability imap4rev1 id] hi\r\n", true},
		{"unterminated list", "* OK [CAPABILITY IMAP4rev1 ID\r\n", true},
		{"PREAUTH", "* PREAUTH [CAPABILITY IMAP4rev1 ID] hi\r\n", false},
		{"BYE", "* BYE too many connections\r\n", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IDWelcome([]byte(tt.greeting)); got != tt.want {
				t.Errorf("IDWelcome(%q): got %v, want %v", tt.greeting, got, tt.want)
			}
		})
	}
}

// FuzzIDWelcome: any greeting bytes are judged without panicking, and an
// untagged OK that lists no capabilities always allows ID.
func FuzzIDWelcome(f *testing.F) {
	for _, s := range []string{"* OK ready\r\n", "* OK [CAPABILITY IMAP4rev1 ID] x\r\n", "* OK [CAPABILITY ID\r\n", "* BYE\r\n", "", "* OK [CAPABILITY ]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ok := IDWelcome(b)
		if s := strings.ToUpper(string(b)); strings.HasPrefix(s, "* OK") && !strings.Contains(s, "[CAPABILITY ") && !ok {
			t.Errorf("IDWelcome(%q): got false, want true for an OK greeting without a capability list", b)
		}
	})
}

func TestNonEmptyStatus(t *testing.T) {
	tests := []struct {
		name    string
		in, out imap.StatusOptions
	}{
		{"empty asks for MESSAGES", imap.StatusOptions{}, imap.StatusOptions{NumMessages: true}},
		{"items kept", imap.StatusOptions{UIDNext: true, NumUnseen: true}, imap.StatusOptions{UIDNext: true, NumUnseen: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NonEmptyStatus(tt.in); got != tt.out {
				t.Errorf("got %+v, want %+v", got, tt.out)
			}
		})
	}
}
