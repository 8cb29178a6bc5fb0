package mochistop

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Close disconnects every client and closes the listeners itself, then lets
// the server's Close stop its hooks. mochi's own path lists a listener's
// clients with Clients.GetByListener, which read-locks the client map twice;
// a client connecting or leaving in between queues a writer, and the
// second read lock waits for it for ever. GetAll locks once.
//
// Listeners ignore a second Close, so the server's Close does not list the
// clients again. Serve on this package's Listener: with mochi's TCP
// listener, a connection accepted at the last moment still races the
// server's wait for its clients.
func Close(srv *mqtt.Server) error {
	srv.Listeners.CloseAll(func(listener string) {
		for _, cl := range srv.Clients.GetAll() {
			if cl.Net.Listener == listener && !cl.Closed() {
				_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
	return srv.Close()
}
