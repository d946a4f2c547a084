package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

const (
	// connectTimeout is how long a new connection may take to send its
	// CONNECT. Mochi sets no deadline until CONNECT is read, so without
	// this an idle socket would hold its goroutine forever and Close
	// would wait for it.
	connectTimeout = 10 * time.Second

	// closeGrace is how long Close lets clients take the server's
	// DISCONNECT before their sockets are closed under them; a client
	// that stopped reading would otherwise block the write.
	closeGrace = time.Second

	// wsBufferBytes sizes the WebSocket read and write buffers.
	wsBufferBytes = 1024
)

// listener is a mochi listener (TCP or WebSocket) that binds in Init, so
// the address is known when Start returns, and keeps every connection it
// accepted, so that Close leaves none behind.
type listener struct {
	id, addr string
	proto    string
	hook     *authHook
	log      *slog.Logger
	// disconnect sends DISCONNECT to the listener's clients and closes
	// them (see Broker.disconnectClients).
	disconnect func(listenerID string)

	ln      net.Listener
	http    *http.Server // WebSocket only
	closed  atomic.Bool
	serving atomic.Bool   // Serve was started (see markServing)
	stop    chan struct{} // closed by Close, ends accept back-off waits
	served  chan struct{} // closed when Serve returns
	wg      sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns map[*trackedConn]struct{}

	establish listeners.EstablishFn
}

// trackedConn is an accepted connection. connected turns true once mochi
// has read its CONNECT (see authHook.OnConnect).
type trackedConn struct {
	net.Conn
	connected atomic.Bool
}

// Read implements net.Conn. It reads from a frame readFloor bytes below
// its caller's, so that the connection's goroutine, parked in Read between
// packets, uses at least a quarter of its stack. Mochi's frames for a
// publish take a reading goroutine's stack to 32 KiB; a parked goroutine
// using less than a quarter of its stack has it halved by every garbage
// collection, and copied back up at the device's next publish. For 10,000
// devices that was a sixth of the server's CPU; the floor keeps the
// stacks where the publishes take them, at no more memory.
func (c *trackedConn) Read(p []byte) (int, error) {
	var floor [readFloor]byte
	return readAbove(c.Conn, p, &floor)
}

// readFloor is the stack Read keeps below a parked reader: with mochi's
// own frames, more than a quarter of 32 KiB.
const readFloor = 8 << 10

//go:noinline
func readAbove(c net.Conn, p []byte, floor *[readFloor]byte) (int, error) {
	floor[0] = 1 // the floor is a real frame, not one the compiler drops
	return c.Read(p)
}

func newTCPListener(id, addr string, h *authHook, disconnect func(string)) *listener {
	return newListener(id, addr, "tcp", h, disconnect)
}

func newWSListener(id, addr string, h *authHook, disconnect func(string)) *listener {
	l := newListener(id, addr, "ws", h, disconnect)
	up := &websocket.Upgrader{
		ReadBufferSize:  wsBufferBytes,
		WriteBufferSize: wsBufferBytes,
		Subprotocols:    []string{"mqtt"},
		// Devices and consoles log in with credentials; the origin of a
		// browser page adds nothing to that.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	upgrade := func(w http.ResponseWriter, r *http.Request) { l.upgrade(up, w, r) }
	l.http = &http.Server{
		Handler:           http.HandlerFunc(upgrade),
		ReadHeaderTimeout: connectTimeout,
		IdleTimeout:       connectTimeout,
	}
	return l
}

func newListener(id, addr, proto string, h *authHook, disconnect func(string)) *listener {
	return &listener{
		id: id, addr: addr, proto: proto, hook: h, log: h.log, disconnect: disconnect,
		stop:   make(chan struct{}),
		served: make(chan struct{}),
		conns:  make(map[*trackedConn]struct{}),
	}
}

// ID implements listeners.Listener.
func (l *listener) ID() string { return l.id }

// Protocol implements listeners.Listener.
func (l *listener) Protocol() string { return l.proto }

// Address implements listeners.Listener: the bound address once Init ran.
func (l *listener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

// Init implements listeners.Listener: it binds the address.
func (l *listener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	l.ln = ln
	return nil
}

// markServing records that mochi started Serve on its own goroutine, so
// Close must wait for it; mochi starts no Serve when its start fails early.
func (l *listener) markServing() { l.serving.Store(true) }

// Serve implements listeners.Listener: it accepts until Close.
func (l *listener) Serve(establish listeners.EstablishFn) {
	defer close(l.served)
	l.establish = establish
	if l.closed.Load() {
		return
	}

	if l.http != nil {
		err := l.http.Serve(l.ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.log.Error("mqtt websocket listener stopped", "err", err, "addr", l.Address())
		}
		return
	}

	backoff := time.Duration(0)
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.closed.Load() {
				return
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, rather than stop serving for good.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if ok, suppressed := l.hook.lim.allow("accept " + l.id); ok {
				l.log.Warn("mqtt accept failed", "err", err, "listener", l.id,
					"suppressed", suppressed)
			}
			select {
			case <-time.After(backoff):
				continue
			case <-l.stop:
				return
			}
		}
		backoff = 0

		tc := l.track(conn)
		if tc == nil {
			continue
		}
		go l.serveConn(tc)
	}
}

// upgrade turns a WebSocket request into an MQTT connection and serves it
// on the request's goroutine.
func (l *listener) upgrade(up *websocket.Upgrader, w http.ResponseWriter, r *http.Request) {
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		l.log.Debug("websocket upgrade failed", "err", err, "remote", r.RemoteAddr)
		return
	}
	tc := l.track(&wsConn{Conn: ws.NetConn(), ws: ws})
	if tc == nil {
		return
	}
	l.serveConn(tc)
}

// track registers an accepted connection, or closes it and returns nil if
// the listener is closing.
func (l *listener) track(c net.Conn) *trackedConn {
	tc := &trackedConn{Conn: c}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		_ = c.Close()
		return nil
	}
	l.conns[tc] = struct{}{}
	l.wg.Add(1)
	return tc
}

// serveConn hands a connection to mochi and waits until it ends.
func (l *listener) serveConn(tc *trackedConn) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.conns, tc)
		l.mu.Unlock()
		_ = tc.Close()
	}()

	// Socket deadlines are wall-clock times for the kernel, not decisions
	// of the broker, so they use the real clock.
	_ = tc.SetDeadline(time.Now().Add(connectTimeout))
	err := l.establish(l.id, tc)

	if !tc.connected.Load() && errors.Is(err, packets.ErrPacketTooLarge) {
		l.hook.connectTooLarge(tc.RemoteAddr())
	}
	if err != nil {
		// Refusals are counted and logged by the hook; the rest is the
		// ordinary end of a connection.
		l.log.Debug("mqtt connection ended", "err", err, "remote", tc.RemoteAddr().String())
	}
}

// Close implements listeners.Listener: it stops accepting, sends the
// clients DISCONNECT for up to closeGrace, then closes every connection and
// waits for their goroutines. Mochi's own close function is not used: it
// can deadlock (see Broker.disconnectClients).
func (l *listener) Close(listeners.CloseFn) {
	l.mu.Lock()
	first := l.closed.CompareAndSwap(false, true)
	l.mu.Unlock()
	if !first {
		return
	}
	close(l.stop)

	if l.http != nil {
		_ = l.http.Close()
	} else if l.ln != nil {
		_ = l.ln.Close()
	}
	if l.serving.Load() {
		<-l.served
	}

	force := time.AfterFunc(closeGrace, l.closeConns)
	l.disconnect(l.id)
	force.Stop()
	l.closeConns()
	l.wg.Wait()
}

// closeConns closes every connection still open.
func (l *listener) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for tc := range l.conns {
		_ = tc.Close()
	}
}

// wsConn is a WebSocket as the byte stream mochi reads and writes. MQTT
// packets travel in binary messages, one packet may span messages and one
// message may hold several packets (MQTT 5 §6.0).
type wsConn struct {
	net.Conn // the underlying socket, for addresses and deadlines
	ws       *websocket.Conn
	r        io.Reader // the message being read
}

var errWSNotBinary = errors.New("websocket message not binary")

// Read implements net.Conn.
func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errWSNotBinary
			}
			c.r = r
		}

		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write implements net.Conn. Mochi serialises writes per client.
func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close implements net.Conn.
func (c *wsConn) Close() error {
	return c.ws.Close()
}
