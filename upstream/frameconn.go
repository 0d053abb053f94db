package upstream

import (
	"errors"
	"io"
	"net"

	"go.uber.org/zap"
)

// respConn is the upstream connection as imapclient sees it: writes and
// deadlines go to the connection, reads come through the response reader.
type respConn struct {
	net.Conn
	r      *respReader
	log    *zap.Logger
	logged bool // only imapclient's read goroutine reads
}

func (c *respConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	var fe *FramingError
	if err != nil && !c.logged && errors.As(err, &fe) {
		c.logged = true
		c.log.Warn("upstream response refused; closing the connection", zap.Error(err))
	}
	return n, err
}

// frame puts the response reader between the upstream connection and
// imapclient. Untagged responses imapclient cannot parse are dropped,
// logged at debug level and counted (Stats.Ignored): imapclient
// would close the connection on one, and a client does not need them.
func (m *Manager) frame(conn net.Conn, src io.Reader, lim respLimits, user string) *respConn {
	log := m.log.With(zap.String("user", user))
	onDrop := func(name []byte) {
		m.ignored.Add(1)
		log.Debug("ignored an untagged response imapclient cannot parse", zap.ByteString("type", name))
	}
	return &respConn{Conn: conn, r: newRespReader(src, lim, onDrop), log: log}
}
