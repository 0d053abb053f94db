package config

import (
	"fmt"
	"os"

	"golang.org/x/crypto/bcrypt"
)

func validateAuth(raw *rawAuth, c *Auth, ps *problems) {
	if raw == nil {
		return
	}
	c.Mode = oneOf(ps, "auth.mode", raw.Mode, c.Mode, "passthrough", "map")
	if c.Mode != "map" {
		if len(raw.Users) > 0 {
			ps.add("auth.users", "only used with auth.mode: map")
		}
		return
	}
	if len(raw.Users) == 0 {
		ps.add("auth.users", "required with auth.mode: map")
		return
	}
	seen := map[string]int{}
	for i, ru := range raw.Users {
		key := func(k string) string { return fmt.Sprintf("auth.users[%d].%s", i, k) }
		u := MappedUser{
			User:                 str(ru.User),
			PasswordHash:         str(ru.PasswordHash),
			UpstreamUser:         str(ru.UpstreamUser),
			UpstreamPassword:     str(ru.UpstreamPassword),
			UpstreamPasswordFile: str(ru.UpstreamPasswordFile),
			OAuth2TokenFile:      str(ru.OAuth2TokenFile),
			Upstream:             str(ru.Upstream),
		}
		switch j, dup := seen[u.User]; {
		case u.User == "":
			ps.add(key("user"), "required")
		case dup:
			ps.add(key("user"), "duplicate of auth.users[%d].user %q", j, u.User)
		default:
			seen[u.User] = i
		}
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			ps.add(key("password_hash"), "must be a bcrypt hash ($2a$/$2b$/$2y$...): %v", err)
		}
		if u.UpstreamUser == "" {
			ps.add(key("upstream_user"), "required")
		}
		set := 0
		for _, v := range []string{u.UpstreamPassword, u.UpstreamPasswordFile, u.OAuth2TokenFile} {
			if v != "" {
				set++
			}
		}
		if set != 1 {
			ps.add(key("upstream_password"), "set exactly one of upstream_password, upstream_password_file and oauth2_token_file")
		}
		for k, f := range map[string]string{"upstream_password_file": u.UpstreamPasswordFile, "oauth2_token_file": u.OAuth2TokenFile} {
			if f == "" {
				continue
			}
			if _, err := os.ReadFile(f); err != nil {
				ps.add(key(k), "%v", err)
			}
		}
		if u.OAuth2TokenFile != "" {
			u.OAuth2Mechanism = oneOf(ps, key("oauth2_mechanism"), ru.OAuth2Mechanism, "xoauth2", "xoauth2", "oauthbearer")
		} else if ru.OAuth2Mechanism != nil {
			ps.add(key("oauth2_mechanism"), "only used with oauth2_token_file")
		}
		c.Users = append(c.Users, u)
	}
}
