package mochistop

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// Listener is a TCP (or TLS) listener for mochi that owns the connections
// it accepts. Its Close stops accepting, has the server disconnect its
// clients, closes what is left, and returns only when every connection's
// goroutine has ended. mochi's own TCP listener returns at once, so a
// connection accepted just before could still add itself to the server's
// ClientsWg while the server waits on it: a WaitGroup misuse the race
// detector reports and Go may panic on.
type Listener struct {
	// ConnError, if set, takes each connection that failed and the error
	// it ended with, instead of the server's log (at debug level).
	ConnError func(net.Conn, error)

	id, address string
	tlsConf     *tls.Config
	ln          net.Listener
	log         *slog.Logger

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup // one per accepted connection, added under mu
	once   sync.Once
}

var _ listeners.Listener = (*Listener)(nil)

// NewListener listens on address once the server adds it; tlsConf may be nil.
func NewListener(id, address string, tlsConf *tls.Config) *Listener {
	return &Listener{id: id, address: address, tlsConf: tlsConf, conns: map[net.Conn]struct{}{}}
}

// Init opens the address.
func (l *Listener) Init(log *slog.Logger) error {
	l.log = log
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	if l.tlsConf != nil {
		ln = tls.NewListener(ln, l.tlsConf)
	}
	l.ln = ln
	return nil
}

// ID names the listener to the server.
func (l *Listener) ID() string { return l.id }

// Protocol is "tcp".
func (l *Listener) Protocol() string { return listeners.TypeTCP }

// Address is where it listens, with the port the kernel chose for ":0".
func (l *Listener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

// Serve accepts connections until Close, each on its own goroutine that
// ends when the client's connection does.
func (l *Listener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return // closed
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			conn.Close()
			return
		}
		l.conns[conn] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			if err := establish(l.id, conn); err != nil {
				l.connError(conn, err)
			}
			conn.Close()
			l.mu.Lock()
			delete(l.conns, conn)
			l.mu.Unlock()
		}()
	}
}

func (l *Listener) connError(conn net.Conn, err error) {
	switch {
	case l.ConnError != nil:
		l.ConnError(conn, err)
	case l.log != nil:
		l.log.Debug("client connection ended", "listener", l.id, "err", err)
	}
}

// Close stops accepting, lets closeClients disconnect the clients politely,
// closes any connection still open (one that never finished its CONNECT),
// and waits for every connection's goroutine.
func (l *Listener) Close(closeClients listeners.CloseFn) {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		if l.ln != nil {
			_ = l.ln.Close()
		}
		closeClients(l.id)
		l.mu.Lock()
		for c := range l.conns {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
}
