package simulators

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/waystation/waystation/schemas"
)

// Errors of the package, checked with errors.Is.
var (
	ErrSpec    = errors.New("bad device spec")
	ErrBroker  = errors.New("bad broker address")
	ErrRunning = errors.New("already running")
	ErrKind    = errors.New("not supported by this kind of device")
	ErrOffline = errors.New("device not connected")
)

// DeviceSpec is one simulated device and the credentials it logs in with.
type DeviceSpec struct {
	Station, Device string
	Kind            schemas.Kind
	Secret          string // MQTT password; the username and client id are Device
	Firmware, Model string // reported in the online status; defaults name the simulator

	// Interval is the telemetry period; zero means DefaultInterval(Kind).
	// Each period is jittered by up to a tenth either way.
	Interval time.Duration
}

// DefaultInterval returns the telemetry period of a device of kind k whose
// spec names none.
func DefaultInterval(k schemas.Kind) time.Duration {
	switch k {
	case schemas.KindLock:
		return 60 * time.Second
	case schemas.KindAED:
		return 300 * time.Second
	}
	return 30 * time.Second
}

// DeviceOptions are what a device needs besides its spec. The zero value
// runs: a local broker, seed 0, the system clock, Yingshang's time zone, no
// logs.
type DeviceOptions struct {
	Broker string // tcp://, mqtt://, ws://, wss://, ssl:// or tls://; default tcp://127.0.0.1:1883
	Seed   int64  // with the device id, decides every simulated value

	// Clock is the simulated time the device lives in: its periods,
	// physics and self-tests run at the clock's speed. Nil means a clock
	// at wall speed that reads Now.
	Clock *Clock
	// Now is the device clock when Clock is nil; default time.Now. Timers
	// then run at wall speed, so a test may freeze Now.
	Now func() time.Time

	Location *time.Location // for time-of-day behaviour; default Asia/Shanghai
	Logger   *slog.Logger

	// TLS is used for wss://, ssl:// and tls:// brokers; nil means the
	// system roots.
	TLS *tls.Config

	// StartDelay is waited before the first connect, so a fleet does not
	// knock on the broker all at once.
	StartDelay time.Duration

	// BootTime is how long device.reboot keeps the device dark, in
	// simulated time; default 2s.
	BootTime time.Duration

	// WeatherOffsetC is added to the outdoor temperature everywhere: a
	// heat wave or a cold snap.
	WeatherOffsetC float64

	// AccessTimeout is how long a door terminal waits for the platform to
	// answer an access request, on the wall clock, before it decides from
	// its own allow-list; default 2s, and never more than 10 s of simulated
	// time.
	AccessTimeout time.Duration

	// Break makes the device misbehave on purpose; the zero value is a
	// device that keeps the contract.
	Break Break

	// Tokens are credential tokens the platform issued for the workers of
	// this device's station: the first workers present these instead of
	// tokens of the simulator's own, and are the ones the terminal's
	// built-in allow-list admits. Nil keeps the simulator's own.
	Tokens []string

	// Trace, when set, hears every message the device sends (sent true)
	// and every command or access answer it receives. It is called from
	// the device's goroutines and must not block.
	Trace func(sent bool, topic string, payload []byte)
}

// Break lists ways a device can break the contract, so the conformance
// probe can be shown to catch each of them.
type Break struct {
	NoWill          bool // connect without a last will
	StatusNotKept   bool // publish the status without the retain flag
	BadTelemetry    bool // send telemetry whose seq is a string
	WrongInterval   bool // report three times less often than the status says
	RepeatCommands  bool // carry out a repeated command id again, with a new answer
	ExpiredCommands bool // carry out commands past their expiry
}

// Protocol figures. Network timing runs on the system's monotonic clock:
// the injected clock is the device's idea of the time of day, which a test
// may freeze, and the pace of its periods.
const (
	defaultBroker   = "tcp://127.0.0.1:1883"
	defaultBootTime = 2 * time.Second
	keepAlive       = 30 * time.Second
	connectTimeout  = 10 * time.Second
	publishTimeout  = 10 * time.Second
	stopTimeout     = 2 * time.Second // for the offline status on a clean stop
	quiesceMs       = 250             // paho's grace for in-flight work on Disconnect
	backoffMin      = 500 * time.Millisecond
	backoffMax      = 30 * time.Second
	stableAfter     = 10 * time.Second // a session this long resets the backoff
	jitterShare     = 0.1
	qos             = 1
	cmdQueueLen     = 32
	maxPending      = 256 // events kept while disconnected
	rememberedCmds  = 256 // command ids answered, for de-duplication
	maxErrorLen     = 256

	// minWallPeriod is the shortest wall-clock telemetry period: at a high
	// speed the period stretches (and the status says so) rather than
	// flooding the broker.
	minWallPeriod = 50 * time.Millisecond

	// physicsStep is the grid, in simulated time, the models step on. A
	// fixed grid makes the random draws of a run depend on the seed and the
	// start alone, not on when reports happen to fire.
	physicsStep = 5 * time.Second
	// maxCatchUp bounds the simulated time stepped on the grid at once; a
	// longer gap (a clock set forward) is one long step.
	maxCatchUp = 48 * time.Hour

	defaultAccessTimeout = 2 * time.Second
	maxAccessWaitSim     = 10 * time.Second // simulated: a visitor waits no longer at the door
	staleAttempt         = 30 * time.Second // simulated: a visit older than this was decided offline
)

// Device is one simulated device. Its fault injection methods are safe to
// call from any goroutine, whether or not it runs.
type Device struct {
	spec   DeviceSpec
	opts   DeviceOptions
	clock  *Clock
	log    *slog.Logger
	err    error // a bad spec or option, returned by Run
	timing *rand.Rand

	// onOnline, when set by a fleet, hears every change of connectedness.
	onOnline func(online bool)

	running atomic.Bool
	online  atomic.Bool
	seq     atomic.Uint64
	kick    chan struct{} // something to publish now; capacity 1
	stats   counters

	mu       sync.Mutex // guards what follows
	env      env
	model    model
	last     time.Time // the grid time the model last stepped to
	pending  []schemas.Event
	answered map[string]schemas.CommandResult
	order    []string // answered ids, oldest first
	current  *session
}

// NewDevice returns a device in a plausible state for its kind, the season
// and the hour. A bad spec or option is reported by Run.
func NewDevice(spec DeviceSpec, o DeviceOptions) *Device {
	return newDevice(spec, o, time.Time{})
}

// newDevice builds a device whose model starts at born (the clock's time
// when zero), so the devices of a fleet share one start.
func newDevice(spec DeviceSpec, o DeviceOptions, born time.Time) *Device {
	o = o.withDefaults()
	spec = spec.withDefaults()
	d := &Device{
		spec:  spec,
		opts:  o,
		clock: o.Clock,
		log: o.Logger.With("device", spec.Device, "station", spec.Station,
			"kind", string(spec.Kind)),
		kick:     make(chan struct{}, 1),
		answered: make(map[string]schemas.CommandResult),
	}
	d.err = validate(spec, o.Broker)

	// Two streams from one seed: the physics must not depend on how many
	// connection attempts the network happened to need.
	id := hashString(spec.Device)
	cl := newClimate(o.Seed, o.Location, spec.Station)
	cl.offsetC += o.WeatherOffsetC
	d.env = env{
		rng:     rand.New(rand.NewPCG(mix(uint64(o.Seed)), id)),
		climate: cl,
		crowd:   newCrowd(o.Seed, spec.Station, cl, o.Tokens),

		sensorSeed: mix(uint64(o.Seed)+3) ^ id,
	}
	d.timing = rand.New(rand.NewPCG(mix(uint64(o.Seed)+1), mix(id)))
	if d.err == nil {
		if born.IsZero() {
			born = o.Now()
		}
		d.last = born.Truncate(physicsStep)
		d.model = newModel(spec.Kind, &d.env, d.last)
	}
	return d
}

func (o DeviceOptions) withDefaults() DeviceOptions {
	if o.Broker == "" {
		o.Broker = defaultBroker
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Clock == nil {
		o.Clock = clockFrom(o.Now)
	}
	o.Now = o.Clock.Now
	if o.Location == nil {
		o.Location = shanghai()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BootTime <= 0 {
		o.BootTime = defaultBootTime
	}
	if o.AccessTimeout <= 0 {
		o.AccessTimeout = defaultAccessTimeout
	}
	return o
}

func (s DeviceSpec) withDefaults() DeviceSpec {
	if s.Interval <= 0 {
		s.Interval = DefaultInterval(s.Kind)
	}
	if s.Firmware == "" {
		s.Firmware = "sim-1.0.0"
	}
	if s.Model == "" {
		s.Model = "sim-" + string(s.Kind)
	}
	return s
}

// shanghai is Asia/Shanghai, or UTC+8 where the system has no zone data:
// the zone has kept no daylight saving since 1991.
var shanghai = sync.OnceValue(func() *time.Location {
	if loc, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return loc
	}
	return time.FixedZone("CST", 8*60*60)
})

// validate checks what the contract and the dialer need.
func validate(s DeviceSpec, broker string) error {
	switch {
	case !schemas.ValidID(s.Station) || s.Station == schemas.AlertsStation:
		return fmt.Errorf("%w: station id %q", ErrSpec, s.Station)
	case !schemas.ValidID(s.Device):
		return fmt.Errorf("%w: device id %q", ErrSpec, s.Device)
	case !s.Kind.Valid():
		return fmt.Errorf("%w: kind %q of %s", ErrSpec, s.Kind, s.Device)
	}
	return validBroker(broker)
}

// validBroker checks that the dialer can reach a broker at u.
func validBroker(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBroker, err)
	}
	switch p.Scheme {
	case "tcp", "mqtt", "ws", "wss", "ssl", "tls", "mqtts":
	default:
		return fmt.Errorf("%w: scheme %q", ErrBroker, p.Scheme)
	}
	if p.Host == "" {
		return fmt.Errorf("%w: %q has no host", ErrBroker, u)
	}
	return nil
}

// interval is the telemetry period the device keeps, in simulated time: the
// spec's, stretched where the clock runs so fast that it would be shorter
// than minWallPeriod on the wall clock.
func (d *Device) interval() time.Duration {
	return max(d.spec.Interval, d.clock.Simulated(minWallPeriod))
}

// ID returns the device id.
func (d *Device) ID() string { return d.spec.Device }

// Spec returns the device's spec with its defaults filled in.
func (d *Device) Spec() DeviceSpec { return d.spec }

// Connected reports whether the device is connected and has announced
// itself online.
func (d *Device) Connected() bool { return d.online.Load() }

// Conn returns the id of the current connection, "" when disconnected.
func (d *Device) Conn() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.current == nil {
		return ""
	}
	return d.current.conn
}

// session is one MQTT connection of a device.
type session struct {
	conn    string // the connection id in the online status and the will
	client  mqtt.Client
	started time.Time
	lost    chan struct{} // closed when paho reports the connection lost
	cmds    chan []byte   // command payloads, handed over by paho's router
	answers chan []byte   // access answers, likewise
	lists   chan []byte   // allow-lists, likewise

	// Owned by the goroutine of Run.
	waiting map[string]waitingAccess // access requests sent, by id

	// Guarded by Device.mu.
	raw     *cuttable     // the network connection under paho, for cuts
	cut     bool          // the simulation severed it: the device stays dark a while
	power   bool          // a power cut, not a dropped link: it boots afterwards
	darkFor time.Duration // how long it stays dark, simulated
}

// end is why a session ended.
type end int

const (
	endStop   end = iota // the context ended
	endLost              // the connection dropped
	endReboot            // a device.reboot command
)

// Run connects the device and keeps it connected, publishing telemetry and
// answering commands, until ctx ends; then it publishes its offline status,
// disconnects and returns nil. It returns only once every goroutine it or
// paho started for it has stopped.
func (d *Device) Run(ctx context.Context) error {
	if d.err != nil {
		return d.err
	}
	if !d.running.CompareAndSwap(false, true) {
		return fmt.Errorf("device %s: %w", d.spec.Device, ErrRunning)
	}
	defer d.running.Store(false)

	if !sleep(ctx, d.opts.StartDelay) {
		return nil
	}

	boot, failures := true, 0
	for {
		s, err := d.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.stats.failures.Add(1)
			d.stats.failing.Store(true)
			failures++
			wait := d.backoff(failures)
			d.logFailure(failures, "connect failed", err, wait)
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		}

		d.stats.failing.Store(false)
		why := d.serve(ctx, s, boot)
		boot = false
		d.setCurrent(nil)
		switch why {
		case endStop:
			d.goOffline(s)
			d.log.Debug("stopped")
			return nil

		case endReboot:
			d.goOffline(s)
			d.log.Info("rebooting", "boot_time", d.opts.BootTime)
			boot, failures = true, 0
			if !d.clock.Sleep(ctx, d.opts.BootTime) {
				return nil
			}

		case endLost:
			d.stats.drops.Add(1)
			if cut, power, dark := d.wasCut(s); cut {
				if power {
					d.log.Info("power cut", "dark_for", dark)
					d.powerDown()
				} else {
					d.log.Info("link down", "for", dark)
				}
				boot, failures = power, 0
				if !d.clock.Sleep(ctx, dark) {
					return nil
				}
				if power {
					d.powerUp()
				}
				continue
			}
			if time.Since(s.started) >= stableAfter {
				failures = 0
			}
			failures++
			wait := d.backoff(failures)
			d.logFailure(failures, "connection lost", nil, wait)
			if !sleep(ctx, wait) {
				return nil
			}
		}
	}
}

// connect opens one MQTT connection with a fresh connection id and a last
// will that names it, then subscribes to the device's commands.
func (d *Device) connect(ctx context.Context) (*session, error) {
	s := &session{
		conn:    newConnID(),
		started: time.Now(),
		lost:    make(chan struct{}),
		cmds:    make(chan []byte, cmdQueueLen),
		answers: make(chan []byte, cmdQueueLen),
		lists:   make(chan []byte, 1),
		waiting: map[string]waitingAccess{},
	}
	d.stats.attempts.Add(1)
	will, err := json.Marshal(schemas.Status{
		Meta: schemas.Meta{TS: d.opts.Now().UnixMilli()},
		Kind: d.spec.Kind,
		Conn: s.conn,
	})
	if err != nil {
		return nil, fmt.Errorf("will: %w", err)
	}

	var lostOnce sync.Once
	if d.opts.Break.NoWill {
		will = nil
	}
	o := mqtt.NewClientOptions().
		AddBroker(d.opts.Broker).
		SetClientID(d.spec.Device).
		SetUsername(d.spec.Device).
		SetPassword(d.spec.Secret).
		SetCleanSession(true).
		SetProtocolVersion(4).
		SetKeepAlive(keepAlive).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(publishTimeout).
		SetAutoReconnect(false). // Run reconnects, with a new connection id and will each time
		SetConnectRetry(false).
		SetTLSConfig(d.opts.TLS).
		SetCustomOpenConnectionFn(d.dialer(ctx, s)).
		SetConnectionLostHandler(func(mqtt.Client, error) {
			lostOnce.Do(func() { close(s.lost) })
		})
	if will != nil {
		o.SetBinaryWill(d.topic(schemas.ChannelStatus), will, qos, true)
	}
	s.client = mqtt.NewClient(o)

	// Connect may sit waiting for a CONNACK; cutting the network connection
	// is what ends the wait when ctx ends. The dial may finish just after a
	// cut, so cut until paho gives up.
	tok := s.client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		d.closeRaw(s)
		for !tok.WaitTimeout(50 * time.Millisecond) {
			d.closeRaw(s)
		}
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		s.client.Disconnect(0)
		return nil, ctx.Err()
	}

	// The router goroutine must never block on us: a full queue drops the
	// message, and the platform's retry (or the terminal's timeout) covers it.
	filters := map[string]byte{d.topic(schemas.ChannelCmd): qos}
	if d.spec.Kind == schemas.KindLock {
		filters[d.topic(schemas.ChannelAccessRes)] = qos
		filters[d.topic(schemas.ChannelAccessList)] = qos
	}
	sub := s.client.SubscribeMultiple(filters, func(_ mqtt.Client, m mqtt.Message) {
		d.trace(false, m.Topic(), m.Payload())
		q := s.cmds
		switch m.Topic() {
		case d.topic(schemas.ChannelAccessRes):
			q = s.answers
		case d.topic(schemas.ChannelAccessList):
			// Only the newest list matters: replace one still waiting.
			select {
			case <-s.lists:
			default:
			}
			q = s.lists
		}
		select {
		case q <- m.Payload():
		default:
			d.log.Warn("receive queue full, message dropped", "topic", m.Topic())
		}
	})
	if err := wait(ctx, s, sub); err != nil {
		s.client.Disconnect(0)
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	d.stats.connects.Add(1)
	return s, nil
}

// dialer opens the network connection paho runs on, keeping hold of it so
// a power cut can sever it the way a real one would: no DISCONNECT, so the
// broker publishes the will.
func (d *Device) dialer(ctx context.Context, s *session) mqtt.OpenConnectionFunc {
	return func(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		nd := &net.Dialer{Timeout: connectTimeout}
		var c net.Conn
		var err error
		switch u.Scheme {
		case "ws", "wss":
			plain := *u
			plain.User = nil
			var tc *tls.Config
			if u.Scheme == "wss" {
				tc = o.TLSConfig
			}
			c, err = mqtt.NewWebsocket(plain.String(), tc, connectTimeout, o.HTTPHeaders,
				o.WebsocketOptions)
		case "ssl", "tls", "mqtts":
			td := &tls.Dialer{NetDialer: nd, Config: o.TLSConfig}
			c, err = td.DialContext(ctx, "tcp", u.Host)
		default:
			c, err = nd.DialContext(ctx, "tcp", u.Host)
		}
		if err != nil {
			return nil, err
		}
		cc := &cuttable{Conn: c}
		d.mu.Lock()
		s.raw = cc
		d.mu.Unlock()
		return cc, nil
	}
}

// errCut is what paho reads from a connection the simulation severed.
var errCut = errors.New("connection severed")

// cuttable is a network connection the simulation can sever. Paho takes
// "use of closed network connection" for its own clean close and stays
// quiet, so after a cut the error is replaced by one it reports as a loss.
type cuttable struct {
	net.Conn
	cut atomic.Bool
}

func (c *cuttable) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && c.cut.Load() {
		err = errCut
	}
	return n, err
}

func (c *cuttable) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil && c.cut.Load() {
		err = errCut
	}
	return n, err
}

// sever closes the connection as a cable pulled out would.
func (c *cuttable) sever() {
	c.cut.Store(true)
	_ = c.Conn.Close() // closing is the point; its error says nothing more
}

// serve runs one connected session: it announces the device, then
// publishes telemetry every interval and answers commands until the
// context ends, the connection drops or a reboot is asked for.
func (d *Device) serve(ctx context.Context, s *session, boot bool) end {
	d.setCurrent(s)
	if err := d.announce(ctx, s, boot); err != nil {
		d.log.Debug("announce failed", "err", err)
		return d.why(ctx, s)
	}
	d.online.Store(true)
	if d.onOnline != nil {
		d.onOnline(true)
	}
	defer func() {
		d.online.Store(false)
		if d.onOnline != nil {
			d.onOnline(false)
		}
	}()
	d.log.Debug("connected", "conn", s.conn)

	tick := d.clock.NewTimer(0) // the first telemetry right away, so the twin fills at once
	defer tick.Stop()
	wake := d.clock.NewTimer(time.Hour) // armed below to the model's next event
	defer wake.Stop()
	answerBy := time.NewTimer(time.Hour) // armed below to the first access deadline
	defer answerBy.Stop()
	defer d.abandonWaiting(s)
	for {
		var err error
		select {
		case <-ctx.Done():
			return endStop
		case <-s.lost:
			return endLost
		case <-tick.C:
			err = d.report(ctx, s)
			next := d.jittered(d.interval())
			if d.opts.Break.WrongInterval {
				next *= 3
			}
			tick.Reset(next)
		case <-wake.C:
			err = d.report(ctx, s)
		case <-d.kick:
			err = d.report(ctx, s)
		case b := <-s.cmds:
			var reboot bool
			reboot, err = d.command(ctx, s, b)
			if reboot {
				return endReboot
			}
		case b := <-s.answers:
			err = d.answer(ctx, s, b)
		case b := <-s.lists:
			err = d.takeList(ctx, s, b)
		case <-answerBy.C:
			err = d.expireWaiting(ctx, s)
		}
		if err != nil {
			d.log.Debug("publish failed", "err", err)
		}
		d.rearm(s, wake, answerBy)
	}
}

// rearm sets the wake timer to the model's next event, rounded up to the
// grid the model steps on, and the answer timer to the first access
// request's deadline.
func (d *Device) rearm(s *session, wake *Timer, answerBy *time.Timer) {
	d.mu.Lock()
	next := d.model.nextWake()
	last := d.last
	d.mu.Unlock()
	if next.IsZero() {
		wake.Stop()
	} else {
		at := next.Truncate(physicsStep)
		if at.Before(next) {
			at = at.Add(physicsStep)
		}
		if !at.After(last) {
			at = last.Add(physicsStep)
		}
		wake.Reset(d.clock.Until(at))
	}

	var first time.Time
	for _, w := range s.waiting {
		first = earliest(first, w.deadline)
	}
	if first.IsZero() {
		answerBy.Stop()
	} else {
		answerBy.Reset(time.Until(first))
	}
}

// why tells why a session that failed to publish is over.
func (d *Device) why(ctx context.Context, s *session) end {
	if ctx.Err() != nil {
		return endStop
	}
	select {
	case <-s.lost:
	default:
		// Not lost yet as far as paho knows: drop it so the will speaks.
		d.closeRaw(s)
		<-s.lost
	}
	return endLost
}

// announce publishes the retained online status and, after a boot, the
// boot event.
func (d *Device) announce(ctx context.Context, s *session, boot bool) error {
	st, err := json.Marshal(schemas.Status{
		Meta:      d.meta(),
		Online:    true,
		Kind:      d.spec.Kind,
		Firmware:  d.spec.Firmware,
		Model:     d.spec.Model,
		IntervalS: max(1, int(d.interval().Round(time.Second)/time.Second)),
		Conn:      s.conn,
	})
	if err != nil {
		return err
	}
	if err := d.send(ctx, s, schemas.ChannelStatus, !d.opts.Break.StatusNotKept, st); err != nil {
		return err
	}
	if boot {
		// Queued, not poked: the first telemetry, due at once, flushes it.
		d.mu.Lock()
		d.queueLocked(event(d.opts.Now(), schemas.EventBoot))
		d.mu.Unlock()
	}
	return nil
}

// report steps the model to now, asks the platform about visitors at the
// door, publishes what happened and then the telemetry.
func (d *Device) report(ctx context.Context, s *session) error {
	d.mu.Lock()
	d.advance(d.opts.Now())
	d.mu.Unlock()

	d.askAccess(ctx, s)
	if err := d.flush(ctx, s); err != nil {
		return err
	}

	d.mu.Lock()
	b, err := d.model.encode(d.meta())
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	if d.opts.Break.BadTelemetry {
		b = breakPayload(b)
	}
	return d.send(ctx, s, schemas.ChannelTelemetry, false, b)
}

// advance steps the model along the grid up to now and queues its
// events; a clock set back leaves the state waiting for it to catch up.
// d.mu is held.
func (d *Device) advance(now time.Time) {
	if gap := now.Sub(d.last); gap > maxCatchUp {
		to := now.Truncate(physicsStep)
		d.queueLocked(d.model.step(to, to.Sub(d.last))...)
		d.last = to
		return
	}
	for {
		next := d.last.Add(physicsStep)
		if next.After(now) {
			return
		}
		d.queueLocked(d.model.step(next, physicsStep)...)
		d.last = next
	}
}

// powerDown and powerUp bracket a power cut: the model is brought up to
// the moment the power goes, and stepped through the dark period when it
// returns, with whatever the loss does to it.
func (d *Device) powerDown() {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.opts.Now()
	d.advance(now)
	if p, ok := d.model.(powered); ok {
		p.powerLost(now)
	}
}

func (d *Device) powerUp() {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.opts.Now()
	d.advance(now)
	if p, ok := d.model.(powered); ok {
		p.powerBack(now)
	}
}

// flush publishes the queued events in order; what fails stays queued.
func (d *Device) flush(ctx context.Context, s *session) error {
	d.mu.Lock()
	evs := d.pending
	d.pending = nil
	d.mu.Unlock()

	for i := range evs {
		e := evs[i]
		e.Seq = d.seq.Add(1)
		b, err := json.Marshal(e)
		if err == nil {
			err = d.send(ctx, s, schemas.ChannelEvent, false, b)
		}
		if err != nil {
			d.mu.Lock()
			d.pending = append(evs[i:], d.pending...)
			d.trimLocked()
			d.mu.Unlock()
			return fmt.Errorf("event %s: %w", e.Type, err)
		}
	}
	return nil
}

// goOffline publishes the retained offline status of the session's
// connection and disconnects cleanly, so the broker drops the will.
func (d *Device) goOffline(s *session) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	b, err := json.Marshal(schemas.Status{Meta: d.meta(), Kind: d.spec.Kind, Conn: s.conn})
	if err == nil {
		err = d.send(ctx, s, schemas.ChannelStatus, !d.opts.Break.StatusNotKept, b)
	}
	if err != nil {
		d.log.Debug("offline status not sent", "err", err)
	}
	s.client.Disconnect(quiesceMs)
}

// send publishes payload on the device's channel ch and waits until the
// broker has it.
func (d *Device) send(ctx context.Context, s *session, ch schemas.Channel, retained bool,
	payload []byte) error {
	topic := d.topic(ch)
	d.trace(true, topic, payload)
	err := wait(ctx, s, s.client.Publish(topic, qos, retained, payload))
	if err == nil {
		d.stats.sent.Add(1)
	}
	return err
}

// breakPayload makes a payload's seq a string, a type the contract refuses.
func breakPayload(b []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return b
	}
	m["seq"] = json.RawMessage(`"one"`)
	out, err := json.Marshal(m)
	if err != nil {
		return b
	}
	return out
}

// trace tells the Trace option about a message.
func (d *Device) trace(sent bool, topic string, payload []byte) {
	if d.opts.Trace != nil {
		d.opts.Trace(sent, topic, payload)
	}
}

// errLost and errTimeout end a wait for paho.
var (
	errLost    = errors.New("connection lost")
	errTimeout = errors.New("timed out")
)

// wait waits for a paho token, giving up when ctx ends or the connection
// drops.
func wait(ctx context.Context, s *session, tok mqtt.Token) error {
	timer := time.NewTimer(publishTimeout)
	defer timer.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-s.lost:
		return errLost
	case <-timer.C:
		return errTimeout
	}
}

// meta stamps a message with the device clock and the next sequence number.
// Only the goroutine of Run publishes, so numbers go out in order.
func (d *Device) meta() schemas.Meta {
	return schemas.Meta{TS: d.opts.Now().UnixMilli(), Seq: d.seq.Add(1)}
}

func (d *Device) topic(ch schemas.Channel) string {
	return schemas.DeviceTopic(d.spec.Station, d.spec.Device, ch)
}

// queue adds events to publish and wakes the session to publish them.
func (d *Device) queue(evs ...schemas.Event) {
	d.mu.Lock()
	d.queueLocked(evs...)
	d.mu.Unlock()
	d.poke()
}

func (d *Device) queueLocked(evs ...schemas.Event) {
	d.pending = append(d.pending, evs...)
	d.trimLocked()
}

// trimLocked drops the oldest events beyond what a device keeps offline.
func (d *Device) trimLocked() {
	if n := len(d.pending) - maxPending; n > 0 {
		d.pending = append([]schemas.Event(nil), d.pending[n:]...)
	}
}

// ReportNow asks the device to publish its telemetry (and any events
// waiting) at once, as a technician pressing a test button would; a device
// not connected reports as soon as it is.
func (d *Device) ReportNow() { d.poke() }

// poke asks the session for telemetry and events now.
func (d *Device) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *Device) setCurrent(s *session) {
	d.mu.Lock()
	d.current = s
	d.mu.Unlock()
}

// closeRaw severs the session's network connection, if it has one yet.
func (d *Device) closeRaw(s *session) {
	d.mu.Lock()
	c := s.raw
	d.mu.Unlock()
	if c != nil {
		c.sever()
	}
}

// wasCut reports whether the simulation severed s, whether as a power
// cut, and for how long the device stays dark.
func (d *Device) wasCut(s *session) (cut, power bool, dark time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return s.cut, s.power, s.darkFor
}

// backoff is the wait before reconnect attempt n (from 1): exponential,
// capped, with full jitter over its upper half so a county that lost its
// broker does not come back in lockstep.
func (d *Device) backoff(n int) time.Duration {
	w := backoffMax
	if n < 16 {
		w = min(backoffMax, backoffMin<<(n-1))
	}
	return w/2 + time.Duration(d.timing.Int64N(int64(w/2)+1))
}

// jittered spreads a period by up to a tenth either way.
func (d *Device) jittered(p time.Duration) time.Duration {
	f := 1 - jitterShare + 2*jitterShare*d.timing.Float64()
	return time.Duration(float64(p) * f)
}

// logFailure logs a failed or lost connection: the first of a run at Info,
// the rest at Debug, so an unreachable broker does not flood the log.
func (d *Device) logFailure(n int, msg string, err error, retry time.Duration) {
	level := slog.LevelDebug
	if n == 1 {
		level = slog.LevelInfo
	}
	args := []any{"attempt", n, "retry_in", retry.Round(time.Millisecond)}
	if err != nil {
		args = append(args, "err", err)
	}
	d.log.Log(context.Background(), level, msg, args...)
}

// newConnID returns a fresh random connection id.
func newConnID() string {
	var b [8]byte
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return hex.EncodeToString(b[:])
}

// sleep waits for d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
