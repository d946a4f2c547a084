package broker

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/waystation/waystation/schemas"
)

// authHook is the mochi hook that authenticates clients, applies the ACL,
// counts and logs refusals and drops the will of a replaced connection.
type authHook struct {
	mqtt.HookBase
	srv     *mqtt.Server
	creds   Credentials
	ctrl    string   // controller username, "" if none
	ctrlSum [32]byte // SHA-256 of the controller secret
	metrics *metrics
	log     *slog.Logger
	lim     *limiter
	now     func() time.Time
	rate    float64 // publishes a second a device may make; 0 means no limit
	burst   int     // publishes a device may make at once before rate applies

	// delivered hears every message mochi delivered to its subscribers
	// (OnPublished, OnWillSent): the Bus subscriptions.
	delivered func(packets.Packet)

	// stopping is set when the broker begins to shut down.
	stopping atomic.Bool

	// peers maps a client id to the identity checked at its last
	// successful login. A new login with the same id replaces the entry;
	// the old connection's disconnect then leaves it alone.
	peers sync.Map // string → *peerEntry

	// gate lets one login per client id through at a time, from a good
	// password to the session being in place; leave holds each admitted
	// client's way out of it.
	gate  loginGate
	leave sync.Map // *mqtt.Client → func()

	// open is closed when logins may proceed (Options.HoldLogins).
	open     chan struct{}
	openOnce sync.Once
}

type peerEntry struct {
	cl     *mqtt.Client // the connection that logged in
	bucket *bucket      // its publish rate; nil for the controller or no limit
	peer
}

func newAuthHook(srv *mqtt.Server, o Options, m *metrics) *authHook {
	h := &authHook{
		srv:     srv,
		creds:   o.Credentials,
		ctrl:    o.ControllerUser,
		ctrlSum: sha256.Sum256([]byte(o.ControllerSecret)),
		metrics: m,
		log:     o.Logger,
		lim:     newLimiter(o.Now),
		now:     o.Now,
		rate:    max(o.MaxMsgsPerSecond, 0),
		burst:   o.MsgBurst,
		open:    make(chan struct{}),
	}
	if !o.HoldLogins {
		h.openLogins()
	}
	return h
}

// openLogins lets logins through; it may be called more than once.
func (h *authHook) openLogins() { h.openOnce.Do(func() { close(h.open) }) }

// ID implements mqtt.Hook.
func (h *authHook) ID() string { return "waystation-auth" }

// Provides implements mqtt.Hook. Mochi asks it of every hook for every
// event of every packet, so it is a table lookup.
func (h *authHook) Provides(b byte) bool { return authEvents[b] }

// authEvents are the mochi events authHook handles.
var authEvents = func() (t [256]bool) {
	for _, b := range []byte{
		mqtt.OnConnect,
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnSubscribe,
		mqtt.OnPublish,
		mqtt.OnWill,
		mqtt.OnPublished,
		mqtt.OnWillSent,
	} {
		t[b] = true
	}
	return t
}()

// OnPublished implements mqtt.Hook: mochi calls it after it delivered a
// publish (from a client or the bus) to its subscribers, on the
// publisher's goroutine, so a device's messages reach the Bus in order.
func (h *authHook) OnPublished(_ *mqtt.Client, pk packets.Packet) {
	if h.delivered != nil {
		h.delivered(pk)
	}
}

// OnWillSent implements mqtt.Hook: a will mochi published.
func (h *authHook) OnWillSent(_ *mqtt.Client, pk packets.Packet) {
	if h.delivered != nil {
		h.delivered(pk)
	}
}

// OnConnect refuses a device whose client id is not its device id: the
// client id keys the session, so another id would let one device take
// over another's session. It runs before OnConnectAuthenticate, and
// answers "identifier rejected" rather than "bad username or password".
func (h *authHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if tc, ok := cl.Net.Conn.(*trackedConn); ok {
		tc.connected.Store(true)
	}

	user := string(pk.Connect.Username)
	if user == "" || h.isController(user) || cl.ID == user {
		return nil
	}
	h.refuse(cl, nil, actionConnect, reasonClientID, "username", clip(user))
	_ = h.srv.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
	return packets.ErrClientIdentifierNotValid
}

// OnConnectAuthenticate checks the username and password, and that the
// will (published by the broker on the client's behalf) names a topic the
// client may publish.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	select {
	case <-h.open:
	default:
		wait := time.NewTimer(loginWait)
		defer wait.Stop()
		select {
		case <-h.open:
		case <-wait.C:
			h.refuse(cl, nil, actionConnect, reasonStarting)
			return false
		}
	}

	user := string(pk.Connect.Username)
	p, reason, err := h.authenticate(user, pk.Connect.Password)
	if reason != "" {
		args := []any{"username", clip(user)}
		if err != nil {
			args = append(args, "err", err)
		}
		h.refuse(cl, nil, actionConnect, reason, args...)
		return false
	}

	if pk.Connect.WillFlag {
		if why := p.canPublish(pk.Connect.WillTopic, pk.Connect.WillRetain); why != "" {
			h.refuse(cl, &p, actionConnect, reasonWill,
				"topic", clip(pk.Connect.WillTopic), "why", why)
			return false
		}
	}

	// Mochi's take-over of an older session with the same client id is not
	// atomic: two logins at once both find no session, both add theirs,
	// and the one left out lingers, deaf, until it disconnects and takes
	// the other's subscriptions with it. Logins per id go one at a time.
	leave, ok := h.gate.enter(cl.ID, loginWait)
	if !ok {
		h.refuse(cl, &p, actionConnect, reasonLoginBusy)
		return false
	}
	timer := time.AfterFunc(loginWait, leave) // mochi may fail before the session is up
	h.leave.Store(cl, func() { timer.Stop(); leave() })

	e := &peerEntry{cl: cl, peer: p}
	if h.rate > 0 && !p.controller {
		e.bucket = newBucket(h.burst, h.now())
	}
	h.peers.Store(cl.ID, e)
	return true
}

// loginWait bounds how long a login waits for another with the same id.
const loginWait = 5 * time.Second

// OnSessionEstablished lets the next login with the same client id in.
func (h *authHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.leaveGate(cl)
}

func (h *authHook) leaveGate(cl *mqtt.Client) {
	if f, ok := h.leave.LoadAndDelete(cl); ok {
		f.(func())()
	}
}

// loginGate admits one holder per key at a time.
type loginGate struct {
	mu   sync.Mutex               // guards busy
	busy map[string]chan struct{} // closed when the holder leaves
}

// enter waits up to wait for key to be free and takes it. leave frees it;
// calling leave again does nothing.
func (g *loginGate) enter(key string, wait time.Duration) (leave func(), ok bool) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		if g.busy == nil {
			g.busy = map[string]chan struct{}{}
		}
		held, busy := g.busy[key]
		if !busy {
			mine := make(chan struct{})
			g.busy[key] = mine
			g.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					g.mu.Lock()
					delete(g.busy, key)
					g.mu.Unlock()
					close(mine)
				})
			}, true
		}
		g.mu.Unlock()
		select {
		case <-held:
		case <-deadline.C:
			return nil, false
		}
	}
}

// wait waits up to d for key to be free.
func (g *loginGate) wait(key string, d time.Duration) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		held, busy := g.busy[key]
		g.mu.Unlock()
		if !busy {
			return
		}
		select {
		case <-held:
		case <-deadline.C:
			return
		}
	}
}

// authenticate returns who user is, or the reason (and any error) for
// refusing the login.
func (h *authHook) authenticate(user string, password []byte) (peer, string, error) {
	switch {
	case user == "":
		return peer{}, reasonAnonymous, nil
	case h.isController(user):
		// Hashing first makes the comparison independent of the length.
		sum := sha256.Sum256(password)
		if subtle.ConstantTimeCompare(sum[:], h.ctrlSum[:]) != 1 {
			return peer{}, reasonBadSecret, nil
		}
		return peer{controller: true}, "", nil
	case !schemas.ValidID(user) || h.creds == nil:
		return peer{}, reasonUnknown, nil
	}

	id, err := h.creds.Authenticate(user, password)
	switch {
	case errors.Is(err, ErrUnknownDevice):
		return peer{}, reasonUnknown, nil
	case errors.Is(err, ErrBadSecret):
		return peer{}, reasonBadSecret, nil
	case err != nil:
		return peer{}, reasonCredentials, err
	case id.Device != user || !schemas.ValidID(id.Station) || id.Station == schemas.AlertsStation:
		return peer{}, reasonCredentials, errors.New("credential store gave a bad identity")
	}
	return peer{station: id.Station, device: id.Device}, "", nil
}

func (h *authHook) isController(user string) bool {
	return h.ctrl != "" && user == h.ctrl
}

// OnACLCheck decides subscriptions, deliveries and MQTT 5 publishes.
// Publishes of MQTT 3.1.1 clients pass here and are decided in OnPublish,
// which sees the retain flag and the QoS and can acknowledge and drop.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	e := h.lookup(cl)
	if e == nil {
		return false
	}

	if !write {
		return e.canSubscribe(topic) == ""
	}
	if cl.Properties.ProtocolVersion < 5 {
		return true
	}
	if why := e.canPublish(topic, false); why != "" {
		h.refuse(cl, &e.peer, actionPublish, why, "topic", clip(topic))
		return false
	}
	return true
}

// OnSubscribe counts and logs the filters OnACLCheck will refuse; mochi
// asks OnACLCheck both for filters and for each delivery, so only here is
// a refusal known to be a subscribe.
func (h *authHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	e := h.lookup(cl)
	if e == nil {
		return pk
	}
	for _, f := range pk.Filters {
		if why := e.canSubscribe(f.Filter); why != "" {
			h.refuse(cl, &e.peer, actionSubscribe, why, "filter", clip(f.Filter))
		}
	}
	return pk
}

// OnPublish refuses what OnACLCheck let through for OnPublish to decide:
// every publish of an MQTT 3.1.1 client and every retained one. A refused
// QoS 0 message is dropped; a QoS 1 or 2 message is acknowledged and
// dropped, since 3.1.1 has no way to say no.
func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	var why string
	var p *peer
	switch e := h.lookup(cl); {
	case cl.Net.Inline:
		// The bus is trusted but for retained commands, which Bus.Publish
		// refuses before they get here.
		if pk.FixedHeader.Retain && isCmdTopic(pk.TopicName) {
			why = reasonRetainedCmd
		}
	case e == nil:
		return pk, packets.ErrRejectPacket
	case h.rateLimited(cl, e):
		// Over its rate: the connection is cut and nothing is kept.
		return pk, packets.ErrRejectPacket
	default:
		p = &e.peer
		why = e.canPublish(pk.TopicName, pk.FixedHeader.Retain)
	}
	if why == "" {
		return pk, nil
	}

	h.refuse(cl, p, actionPublish, why, "topic", clip(pk.TopicName),
		"retain", pk.FixedHeader.Retain)
	if pk.FixedHeader.Qos == 0 {
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

// OnWill drops two kinds of will, and passes every other.
//
// The will of a replaced connection: when a device reconnects with the same
// client id while its old connection lingers (half-open), mochi disconnects
// the old one after the new one is up and then publishes the old one's will,
// whose "offline" would overwrite the new retained "online". The device is
// back, so that will is dropped (MQTT 5 [MQTT-3.1.4-3] would publish it).
// The newest login per client id is in h.peers, recorded before mochi takes
// the old session over; the old client's own fields are never written, as
// mochi writes them without synchronisation.
//
// Every will once the broker shuts down: the devices did not go away, the
// broker did, and retained "offline" statuses for the whole fleet would
// greet the controller after the restart.
//
// Mochi publishes whatever will this returns; one with no topic reaches no
// subscriber and is not retained.
func (h *authHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if h.stopping.Load() {
		return mqtt.Will{}, nil
	}
	if e := h.lookup(cl); e != nil && e.cl != cl {
		h.log.Debug("dropped the will of a replaced connection", "client", clip(cl.ID),
			"remote", cl.Net.Remote)
		return mqtt.Will{}, nil
	}
	return will, nil
}

// OnDisconnect counts a connection dropped for an oversize packet or a
// malformed topic, and forgets the client's identity.
func (h *authHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	h.leaveGate(cl)
	e := h.lookup(cl)
	if e != nil && e.cl != cl {
		// A newer login with this id is taking the session over. Mochi's
		// teardown of this connection runs after this hook and, unless the
		// take-over has marked it taken over, deletes the session by id:
		// the new one, if it was added meanwhile, leaving it deaf. The
		// take-over is done when the newer login leaves the gate.
		h.gate.wait(cl.ID, loginWait)
	}
	var p *peer
	if e != nil {
		p = &e.peer
	}
	switch {
	case errors.Is(err, packets.ErrPacketTooLarge):
		// After CONNECT only a publish grows large, so count it as one.
		h.refuse(cl, p, actionPublish, reasonTooLarge)
	case malformedPublish(err):
		h.refuse(cl, p, actionPublish, reasonMalformed, "err", err)
	}
	if e != nil && e.cl == cl {
		h.peers.CompareAndDelete(cl.ID, e)
	}
}

// lookup returns the identity cl logged in with, or nil.
func (h *authHook) lookup(cl *mqtt.Client) *peerEntry {
	v, ok := h.peers.Load(cl.ID)
	if !ok {
		return nil
	}
	return v.(*peerEntry)
}

// refuse counts a refusal and logs it, at most once per client per
// logWindow.
func (h *authHook) refuse(cl *mqtt.Client, p *peer, action, reason string, attrs ...any) {
	h.metrics.deny(action, reason)
	ok, suppressed := h.lim.allow(cl.ID)
	if !ok {
		return
	}

	args := []any{"action", action, "reason", reason, "client", clip(cl.ID)}
	if cl.Net.Remote != "" {
		args = append(args, "remote", cl.Net.Remote)
	}
	if p != nil && !p.controller {
		args = append(args, "station", p.station, "device", p.device)
	}
	args = append(args, attrs...)
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	h.log.Warn("mqtt request refused", args...)
}

// connectTooLarge counts a connection whose CONNECT packet was over the
// limit; mochi drops it before any hook sees it.
func (h *authHook) connectTooLarge(remote net.Addr) {
	h.metrics.deny(actionConnect, reasonTooLarge)
	host := remote.String()
	if ip, _, err := net.SplitHostPort(host); err == nil {
		host = ip
	}
	ok, suppressed := h.lim.allow("remote " + host)
	if !ok {
		return
	}
	args := []any{"action", actionConnect, "reason", reasonTooLarge, "remote", remote.String()}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	h.log.Warn("mqtt request refused", args...)
}

// clip bounds untrusted text put in a log line.
func clip(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
