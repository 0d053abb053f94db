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
			// "" until the upstream is known: userMechanisms fills it.
			u.OAuth2Mechanism = oneOf(ps, key("oauth2_mechanism"), ru.OAuth2Mechanism, "", oauth2Mechanisms...)
		} else if ru.OAuth2Mechanism != nil {
			ps.add(key("oauth2_mechanism"), "only used with oauth2_token_file")
		}
		c.Users = append(c.Users, u)
	}
}

// oauth2Mechanisms are the values of oauth2_mechanism (upstream/quirks
// login.go: MechXOAUTH2, MechOAUTHBEARER).
var oauth2Mechanisms = []string{"xoauth2", "oauthbearer"}

// userMechanisms gives each map-mode user with an OAuth2 token and no
// oauth2_mechanism of its own the mechanism of the upstream its logins
// are routed to (Config.Route), so a preset's mechanism applies unless
// the user's entry says otherwise. A user routed nowhere (a problem
// validateUserRoutes reports) keeps the default.
func userMechanisms(c *Config) {
	ups, _ := c.Routes()
	for i := range c.Auth.Users {
		u := &c.Auth.Users[i]
		if u.OAuth2TokenFile == "" || u.OAuth2Mechanism != "" {
			continue
		}
		u.OAuth2Mechanism = defaultOAuth2Mechanism
		name, ok := c.Route(u.User, u.Upstream)
		for _, up := range ups {
			if ok && up.Name == name {
				u.OAuth2Mechanism = up.OAuth2Mechanism
			}
		}
	}
}
