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
		switch {
		case (u.UpstreamPassword == "") == (u.UpstreamPasswordFile == ""):
			ps.add(key("upstream_password"), "set exactly one of upstream_password and upstream_password_file")
		case u.UpstreamPasswordFile != "":
			if _, err := os.ReadFile(u.UpstreamPasswordFile); err != nil {
				ps.add(key("upstream_password_file"), "%v", err)
			}
		}
		c.Users = append(c.Users, u)
	}
}
