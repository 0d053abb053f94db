package proxy

import (
	"context"
	"reflect"
	"sync"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
)

// byeUpstreamRemoved is the BYE (RFC 3501 7.1.5) a session gets when a
// reload removes or replaces its upstream: the server is closing the
// connection for a reason of its own, and the client may log in again
// (a changed upstream takes the same login at once).
const byeUpstreamRemoved = "Mail server configuration changed, please log in again"

// routeChange is what a reload does to the upstreams: the routes to
// swap in (with the rest of the settings, reload.go), and those it added
// and retires.
type routeChange struct {
	next, added, retire []*route
}

// sameManager reports whether an upstream's manager can serve new
// settings b as it serves a: everything the manager, its pools, its
// watchers or a session's capabilities read is unchanged. Domains only
// steer new logins (config.Route reads them from the settings), so
// a change to them alone keeps the manager and its sessions.
func sameManager(a, b config.Upstream) bool {
	a.Domains, b.Domains = nil, nil
	return reflect.DeepEqual(a, b)
}

// planRoutes builds the routing of cfg from the current one: an upstream
// whose settings are unchanged (sameManager) keeps its route, manager,
// pools and watchers; a new or changed one gets a new manager; a removed
// or changed one's route is retired. On error (an added upstream's TLS
// settings), the managers it started are closed and nothing changes.
// reloadMu must be held.
func (s *Server) planRoutes(cfg *config.Config) (*routeChange, error) {
	cur := map[string]*route{}
	for _, r := range s.routes() {
		cur[r.cfg.Name] = r
	}
	s.routeGen++
	ups, _ := cfg.Routes()
	ch := &routeChange{}
	for _, u := range ups {
		if r, ok := cur[u.Name]; ok && sameManager(r.cfg, u) {
			ch.next = append(ch.next, r)
			delete(cur, u.Name)
			continue
		}
		r, err := newRoute(cfg, u, s.routeGen, s.log)
		if err != nil {
			shutdownAll(ch.added)
			return nil, err
		}
		ch.added = append(ch.added, r)
		ch.next = append(ch.next, r)
	}
	for _, r := range s.routes() {
		if _, gone := cur[r.cfg.Name]; gone {
			ch.retire = append(ch.retire, r)
		}
	}
	return ch, nil
}

// applyRoutes runs once ch.next is in place (new logins follow it):
// it retires the routes that left, whose sessions get BYE and whose
// managers log their upstream connections out, within timeout. Each
// change is logged with the upstream's name. reloadMu must be held.
func (s *Server) applyRoutes(ch *routeChange, timeout time.Duration) {
	added, retired := map[string]*route{}, map[string]bool{}
	for _, r := range ch.added {
		added[r.cfg.Name] = r
	}
	for _, r := range ch.retire {
		retired[r.cfg.Name] = true
	}
	for _, r := range ch.added {
		if !retired[r.cfg.Name] {
			s.log.Info("upstream added", zap.String("upstream", r.cfg.Name), zap.String("address", r.cfg.Address))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, r := range ch.retire {
		n := s.retireRoute(ctx, r)
		fields := []zap.Field{zap.String("upstream", r.cfg.Name), zap.String("address", r.cfg.Address), zap.Int("sessions", n)}
		if nr, ok := added[r.cfg.Name]; ok {
			fields = append(fields, zap.Strings("changed", upstreamKeyChanges(r.cfg, nr.cfg)))
			s.log.Info("upstream changed: its sessions were closed and may log in again", fields...)
			continue
		}
		s.log.Info("upstream removed: its sessions were closed", fields...)
	}
}

// retireRoute marks r retired, says BYE to every session logged in on it
// (a login still running on it sees retired and is refused: session.adopt)
// and closes its manager, which logs its connections out. It returns how
// many sessions got BYE.
func (s *Server) retireRoute(ctx context.Context, r *route) int {
	s.mu.Lock()
	r.retired = true
	var on []*session
	for sess := range s.live {
		if sess.up == r {
			on = append(on, sess)
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, sess := range on {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess.bye(byeUpstreamRemoved) // bounded by byeWriteTimeout
		}()
	}
	wg.Wait()
	if err := r.mgr.Shutdown(ctx); err != nil {
		s.log.Warn("upstream removed: its connections did not all log out in time", zap.String("upstream", r.cfg.Name), zap.Error(err))
	}
	return len(on)
}

// adopt records that sess logged in on r, unless a reload retired r
// meanwhile: then false, and the login must be refused. Under s.mu, with
// retireRoute, so a session is either seen by the reload or refused here.
func (s *Server) adopt(sess *session, r *route) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.retired {
		return false
	}
	sess.up = r
	return true
}

// isRetired reports whether a reload retired r.
func (s *Server) isRetired(r *route) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return r.retired
}

// upstreamKeyChanges names the config keys (upstreams[].KEY, snake case
// as in the file) whose values differ between a and b, for the log line
// of a changed upstream.
func upstreamKeyChanges(a, b config.Upstream) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var keys []string
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			keys = append(keys, snakeKey(va.Type().Field(i).Name))
		}
	}
	return keys
}

// snakeKey turns a Go field name into its config key: a word starts at
// an upper-case letter after a lower-case one, or at the last capital of
// an acronym followed by a lower-case letter (CAFile: ca_file).
func snakeKey(field string) string {
	var out []rune
	rs := []rune(field)
	for i, r := range rs {
		lower := unicode.ToLower(r)
		if i > 0 && unicode.IsUpper(r) &&
			(unicode.IsLower(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
			out = append(out, '_')
		}
		out = append(out, lower)
	}
	return string(out)
}
