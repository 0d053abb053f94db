package verified

import (
	"testing"
	"time"
)

func TestPassword(t *testing.T) {
	var p Password
	if p.Matches("", 0) || p.Matches("pw", 0) {
		t.Fatal("an unset password matched")
	}
	p.Store("pw")
	tests := []struct {
		pass string
		want bool
	}{{"pw", true}, {"pw ", false}, {"PW", false}, {"", false}}
	for _, tt := range tests {
		if got := p.Matches(tt.pass, time.Hour); got != tt.want {
			t.Errorf("Matches(%q): got %v, want %v", tt.pass, got, tt.want)
		}
	}
	if string(p.hash[:]) == "pw" {
		t.Fatal("the password is stored in the clear")
	}
	p.at = time.Now().Add(-2 * time.Hour)
	if p.Matches("pw", time.Hour) {
		t.Fatal("an expired password matched")
	}
	if !p.Matches("pw", 0) {
		t.Fatal("with no expiry, an old password did not match")
	}
	p.Renew()
	if !p.Matches("pw", time.Hour) {
		t.Fatal("a renewed password did not match")
	}
}
