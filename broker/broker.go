package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
)

// Identity is who a username/password belongs to.
type Identity struct {
	Station, Device string
}

// Credentials checks a device's username (its device id) and password (its
// secret). It returns ErrUnknownDevice or ErrBadSecret, wrapped or not, when
// the device may not log in; any other error refuses the login too and is
// logged as a fault of the credential store.
type Credentials interface {
	Authenticate(username string, password []byte) (Identity, error)
}

// Errors of the broker, checked with errors.Is.
var (
	// ErrUnknownDevice is returned by Credentials for a username that is
	// no registered device.
	ErrUnknownDevice = errors.New("unknown device")
	// ErrBadSecret is returned by Credentials for a wrong password.
	ErrBadSecret = errors.New("bad device secret")
	// ErrClosed is returned by a Broker or Bus used after Close.
	ErrClosed = errors.New("broker closed")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("broker already started")
	// ErrRetainedCommand is returned by Bus.Publish for a retained message
	// on a cmd topic.
	ErrRetainedCommand = errors.New("retained command refused")
	// ErrInvalidTopic is returned by the Bus for a malformed topic or filter.
	ErrInvalidTopic = errors.New("invalid topic")
)

// Defaults of Options.
const (
	// DefaultMaxPacketBytes is the default Options.MaxPacketBytes: device
	// messages are a few hundred bytes of JSON.
	DefaultMaxPacketBytes = 64 << 10
	// DefaultClientWritesPending is the default Options.ClientWritesPending.
	// Mochi's own 8192 is a 64 KiB channel per client; a device receives a
	// command now and then, and the controller's high-volume side is
	// the in-process Bus, which has no queue.
	DefaultClientWritesPending = 128
)

const (
	// netBufferBytes sizes each client's read buffer and the batch size of
	// its write buffer: device packets are a few hundred bytes, and ten
	// thousand connections at mochi's 2 KiB each would be 40 MiB of buffers.
	netBufferBytes = 1024

	// sessionExpiry bounds how long a persistent (clean session off) v3
	// session of a device that went away is kept.
	sessionExpiry = 7 * 24 * time.Hour

	// sysTopicInterval is how often mochi refreshes $SYS topics; nobody
	// may subscribe to them here, so rarely.
	sysTopicInterval = 60 * time.Second

	// storeOpenTimeout bounds the wait for a store file another process
	// holds.
	storeOpenTimeout = 500 * time.Millisecond
)

// Options configure a Broker. The zero value runs a broker with no network
// listener and no store, reachable only through its Bus.
type Options struct {
	// TCPAddr is the MQTT listener address, e.g. ":1883" or "127.0.0.1:0";
	// "" means no TCP listener.
	TCPAddr string
	// WSAddr is the MQTT-over-WebSocket listener address; "" means none.
	WSAddr string
	// StorePath is the bbolt file that keeps retained messages and sessions
	// across restarts; "" keeps them in memory only.
	StorePath string
	// MaxPacketBytes is the largest MQTT packet a client may send; a bigger
	// one drops the connection. Default DefaultMaxPacketBytes.
	MaxPacketBytes uint32
	// MaxMsgsPerSecond is how many publishes a second a device may make
	// after a burst of MsgBurst; the publish that goes over cuts its
	// connection (its will is published) and is counted. The controller
	// is not limited. 0 means DefaultMaxMsgsPerSecond, negative no limit.
	MaxMsgsPerSecond float64
	// MsgBurst is how many publishes a device may make at once before
	// MaxMsgsPerSecond applies. Default DefaultMsgBurst.
	MsgBurst int
	// ClientWritesPending is the per-client queue of outbound messages; a
	// message for a client whose queue is full is dropped and counted.
	// Default DefaultClientWritesPending.
	ClientWritesPending int
	// Credentials checks device logins; nil refuses every device.
	Credentials Credentials
	// ControllerUser and ControllerSecret are the controller's own login,
	// which may publish and subscribe anything under waystation/ (never a
	// retained cmd). Empty means no controller login over the network.
	ControllerUser, ControllerSecret string
	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the broker's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Now is the clock for log rate limits; nil means time.Now.
	Now func() time.Time
	// HoldLogins makes logins wait (up to 5 s each) until OpenLogins, so
	// the controller can subscribe before the first device publishes: a
	// message acknowledged before anyone subscribed would be lost.
	HoldLogins bool
}

// Broker is an MQTT broker for devices and the controller.
type Broker struct {
	o       Options
	log     *slog.Logger
	srv     *mqtt.Server
	hook    *authHook
	metrics *metrics
	bus     *mqtt.Client // the in-process publisher behind every Bus
	subID   atomic.Int64 // the last identifier given to a Bus subscription
	subs    busHandlers  // every Bus subscription

	mu      sync.Mutex // guards tcp, ws and started, and orders Start and Close
	tcp     *listener
	ws      *listener
	started bool
	closed  atomic.Bool // set once by Start's failure or Close; read anywhere
	// injecting counts Bus publishes under way in mochi; see enter.
	injecting atomic.Int64
}

// New checks o and builds a broker; nothing listens until Start.
func New(o Options) (*Broker, error) {
	if o.MaxPacketBytes == 0 {
		o.MaxPacketBytes = DefaultMaxPacketBytes
	}
	if o.ClientWritesPending <= 0 {
		o.ClientWritesPending = DefaultClientWritesPending
	}
	if o.MaxMsgsPerSecond == 0 {
		o.MaxMsgsPerSecond = DefaultMaxMsgsPerSecond
	}
	if o.MsgBurst <= 0 {
		o.MsgBurst = DefaultMsgBurst
	}
	if o.ClientWritesPending > 1<<20 {
		return nil, fmt.Errorf("client writes pending %d: at most %d", o.ClientWritesPending, 1<<20)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if (o.ControllerUser == "") != (o.ControllerSecret == "") {
		return nil, errors.New("controller user and secret: give both or neither")
	}

	b := &Broker{o: o, log: o.Logger}
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities:             capabilities(o),
		ClientNetWriteBufferSize: netBufferBytes,
		ClientNetReadBufferSize:  netBufferBytes,
		Logger:                   mochiLogger(o.Logger, o.Now, b.closed.Load),
		SysTopicResendInterval:   int64(sysTopicInterval / time.Second),
	})

	// The bus publishes through its own inline client rather than mochi's
	// InlineClient: that one sits in the client list under the id
	// "inline", which a device of that name could take over.
	b.bus = b.srv.NewClient(nil, mqtt.LocalListener, "waystation-bus", true)

	m, err := newMetrics(o.Registerer, b.srv.Info)
	if err != nil {
		return nil, err
	}
	b.metrics = m
	b.hook = newAuthHook(b.srv, o, m)
	b.hook.delivered = b.subs.dispatch
	if err := b.srv.AddHook(b.hook, nil); err != nil {
		m.unregister()
		return nil, fmt.Errorf("add auth hook: %w", err)
	}
	return b, nil
}

// capabilities are mochi's limits for a fleet of many small devices.
func capabilities(o Options) *mqtt.Capabilities {
	c := mqtt.NewDefaultServerCapabilities()
	c.MaximumPacketSize = o.MaxPacketBytes
	c.MaximumClientWritesPending = int32(o.ClientWritesPending)
	c.MaximumSessionExpiryInterval = uint32(sessionExpiry / time.Second)

	// Mochi deletes retained messages older than this; a device's
	// retained status must outlive any uptime, so no age limit.
	c.MaximumMessageExpiryInterval = 0

	// Aliases would let an MQTT 5 publish name its topic only after the
	// ACL check has seen it empty.
	c.TopicAliasMaximum = 0
	return c
}

// Start opens the store, binds the listeners and serves. The listeners are
// bound when it returns. If it fails, the broker is closed.
func (b *Broker) Start() (err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return ErrClosed
	}
	if b.started {
		return ErrStarted
	}
	b.started = true
	defer func() {
		if err != nil {
			b.shutdown()
		}
	}()

	if b.o.StorePath != "" {
		st := &store{Hook: new(bolt.Hook)}
		err := b.srv.AddHook(st, &bolt.Options{
			Path:    b.o.StorePath,
			Options: &bbolt.Options{Timeout: storeOpenTimeout},
		})
		if err != nil {
			return fmt.Errorf("open store %s: %w", b.o.StorePath, err)
		}
	}

	if b.o.TCPAddr != "" {
		b.tcp = newTCPListener("tcp", b.o.TCPAddr, b.hook, b.disconnectClients)
		if err := b.srv.AddListener(b.tcp); err != nil {
			return fmt.Errorf("listen mqtt %s: %w", b.o.TCPAddr, err)
		}
	}
	if b.o.WSAddr != "" {
		b.ws = newWSListener("ws", b.o.WSAddr, b.hook, b.disconnectClients)
		if err := b.srv.AddListener(b.ws); err != nil {
			return fmt.Errorf("listen mqtt websocket %s: %w", b.o.WSAddr, err)
		}
	}

	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("serve mqtt: %w", err)
	}
	for _, l := range []*listener{b.tcp, b.ws} {
		if l != nil {
			l.markServing()
		}
	}
	b.log.Info("broker started", "tcp", b.tcpAddrLocked(), "ws", b.wsAddrLocked(),
		"store", b.o.StorePath)
	return nil
}

// Close stops the listeners, disconnects every client and closes the
// store. The clients' wills are not published: the devices did not fail,
// and their retained statuses stay as they were. No goroutine of the
// broker is left when it returns. Closing twice is harmless.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil
	}
	b.shutdown()
	b.log.Info("broker stopped")
	return nil
}

// shutdown closes mochi (listeners, clients, hooks) once; b.mu is held.
func (b *Broker) shutdown() {
	b.closed.Store(true)
	b.waitInjected()
	b.hook.stopping.Store(true)
	b.hook.openLogins() // a held login ends with its connection
	_ = b.srv.Close()   // always nil
	b.metrics.unregister()
}

// enter admits a Bus publish into mochi, or refuses it (false) once the
// broker is closing; leave ends it. Mochi's storage hook closes its file
// when mochi closes, and a retained publish injected meanwhile would write
// to it: shutdown marks the broker closed, then waits for the publishes
// already admitted (waitInjected). A publish that a bus handler makes
// from inside one admitted before the close is refused, not waited for.
func (b *Broker) enter() bool {
	b.injecting.Add(1)
	if b.closed.Load() {
		b.injecting.Add(-1)
		return false
	}
	return true
}

func (b *Broker) leave() { b.injecting.Add(-1) }

// waitInjected waits, up to injectDrain, for the admitted Bus publishes.
func (b *Broker) waitInjected() {
	deadline := time.Now().Add(injectDrain)
	for b.injecting.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// injectDrain bounds shutdown's wait for Bus publishes under way: a bus
// handler may wait up to 2 s for room in a queue.
const injectDrain = 5 * time.Second

// disconnectClients sends DISCONNECT to every client of a listener and
// closes it. It stands in for mochi's closeListenerClients, whose
// Clients.GetByListener takes the clients' read lock twice and deadlocks
// when a client leaving at the same moment waits for the write lock.
func (b *Broker) disconnectClients(listenerID string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Listener == listenerID && !cl.Closed() {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// TCPAddr returns the bound address of the TCP listener ("" if none), with
// the real port when Options.TCPAddr asked for port 0.
func (b *Broker) TCPAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tcpAddrLocked()
}

// tcpAddrLocked is TCPAddr with b.mu held.
func (b *Broker) tcpAddrLocked() string {
	if b.tcp == nil {
		return ""
	}
	return b.tcp.Address()
}

// WSAddr returns the bound address of the WebSocket listener ("" if none).
func (b *Broker) WSAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.wsAddrLocked()
}

func (b *Broker) wsAddrLocked() string {
	if b.ws == nil {
		return ""
	}
	return b.ws.Address()
}

// OpenLogins lets held logins through (see Options.HoldLogins). Calling it
// again does nothing.
func (b *Broker) OpenLogins() { b.hook.openLogins() }

// Bus returns a new in-process client onto this broker. Each Bus keeps its
// own subscriptions, which its Close removes. Subscribe after Start to be
// given the retained messages loaded from the store.
func (b *Broker) Bus() *Bus {
	return &Bus{b: b}
}
