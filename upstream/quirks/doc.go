// Package quirks is the one home of what idlemux does differently by
// upstream server or provider: behaviour keyed by a capability
// (caps.go, a table with a source per row; the login method, login.go),
// by a response code (codes.go), by the greeting (greeting.go), and the
// reference server's own words, limits and timing that idlemux
// reproduces or works around (reference.go). Provider settings
// (address, TLS, IDLE cut-off, connection cap, OAuth2 mechanism) are
// config, keyed by preset: config/presets.go.
//
// Each entry cites its source: an RFC, a provider's documentation, or the
// observed behaviour and the test that shows it. Code elsewhere asks here
// instead of testing a capability or a server's text itself, so that a
// new server's quirk has one place to go.
//
// The package imports only go-imap: both upstream/ and proxy/ call it.
package quirks
