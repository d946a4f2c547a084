package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// The commands' buckets: every command by id (the audit log), and the ids
// of those not finished yet (waiting for the device, or for their effect),
// so a restart finds them without reading the whole log.
var (
	bucketCommands     = []byte("commands")
	bucketCommandsOpen = []byte("commands_open")
)

// Command states.
const (
	CommandPending      = "pending"      // recorded, not sent yet (device away, or queued behind another)
	CommandSent         = "sent"         // published, no answer yet; retried
	CommandAcknowledged = "acknowledged" // the device carried it out
	CommandFailed       = "failed"       // the device refused it or could not carry it out
	CommandExpired      = "expired"      // no answer before its expiry; never sent after it
)

// CommandStates lists the states, in the order a command goes through them.
var CommandStates = []string{CommandPending, CommandSent, CommandAcknowledged, CommandFailed,
	CommandExpired}

// Effects of an ac.set command, judged from the room temperature the AC
// reports after it acknowledged.
const (
	EffectChecking   = "checking"   // waiting for the check
	EffectReached    = "reached"    // the room is at the setpoint
	EffectMoving     = "moving"     // the room moved toward the setpoint
	EffectNoEffect   = "no_effect"  // the room did not move toward the setpoint
	EffectUnknown    = "unknown"    // the AC reported nothing to judge by
	EffectSuperseded = "superseded" // another command changed the AC before the check
)

// Notice types of commands.
const (
	NoticeCommandSent         = "command.sent"
	NoticeCommandAcknowledged = "command.acknowledged"
	NoticeCommandFailed       = "command.failed"
	NoticeCommandExpired      = "command.expired"
	NoticeCommandNoEffect     = "command.no_effect"
)

// Defaults of CommandsOptions.
const (
	DefaultCommandTTL       = 2 * time.Minute
	DefaultCommandMaxTTL    = 24 * time.Hour
	DefaultCommandRetry     = 5 * time.Second
	DefaultCommandEvery     = 250 * time.Millisecond
	DefaultEffectWithin     = 15 * time.Minute
	DefaultEffectMinC       = 0.5
	DefaultCommandRetention = 90 * 24 * time.Hour
)

// reachedWithinC is how close to the setpoint a room counts as there.
const reachedWithinC = 1.0

// Errors of commands, checked with errors.Is.
var (
	// ErrInvalidCommand is returned for a request that breaks the
	// contract: an unknown name, bad arguments, a command the device's
	// kind does not take, a bad expiry or issuer.
	ErrInvalidCommand = errors.New("invalid command")
	// ErrCommandNotFound is returned for an unknown command id.
	ErrCommandNotFound = errors.New("no such command")
	// ErrCommandsStopped is returned once Run has returned.
	ErrCommandsStopped = errors.New("commands stopped")
)

// CommandsOptions configures Commands. DB, Bus, Registry and Twins are
// required.
type CommandsOptions struct {
	DB       *bolt.DB
	Bus      Bus
	Registry *devices.Registry
	Twins    *devices.Twins
	// DefaultTTL is the expiry of a request that names none; default
	// DefaultCommandTTL. MaxTTL bounds any; default DefaultCommandMaxTTL.
	DefaultTTL, MaxTTL time.Duration
	// RetryEvery is how long a sent command waits for its answer before it
	// is sent again (on the injected clock); a device coming back online
	// gets it again at once. Default DefaultCommandRetry.
	RetryEvery time.Duration
	// Every is how often (wall clock) expiries, retries and effects are
	// checked. Default DefaultCommandEvery.
	Every time.Duration
	// EffectWithin is how long after an ac.set is acknowledged the room
	// must have moved toward the setpoint by EffectMinC degrees (or be
	// within a degree of it). Defaults DefaultEffectWithin and
	// DefaultEffectMinC.
	EffectWithin time.Duration
	EffectMinC   float64
	// Retention is how long finished commands stay in the audit log;
	// default DefaultCommandRetention.
	Retention time.Duration
	// Partition, when on, refuses commands to stations this controller
	// does not own: their devices' answers go to another controller.
	Partition Partition
	// Notifier hears of commands sent, answered, expired and without
	// effect; nil tells no one.
	Notifier Notifier
	Now      func() time.Time
	Logger   *slog.Logger
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// CommandRecord is one command and what became of it: an entry of the
// audit log.
type CommandRecord struct {
	ID      string         `json:"id"`
	Device  string         `json:"device"`
	Station string         `json:"station"`
	Kind    schemas.Kind   `json:"kind"`
	Name    string         `json:"name"`
	Args    map[string]any `json:"args,omitempty"`
	// Issuer is who asked: "operator:NAME", "schedule:RUN" or "rule:NAME".
	Issuer    string    `json:"issuer"`
	Reason    string    `json:"reason,omitempty"`
	Created   time.Time `json:"created"`
	ExpiresAt time.Time `json:"expires_at"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	// FirstSent and LastSent are when it was first and last published.
	FirstSent time.Time `json:"first_sent,omitzero"`
	LastSent  time.Time `json:"last_sent,omitzero"`
	// Done is when it was acknowledged, failed or expired.
	Done time.Time `json:"done,omitzero"`
	// OK and Error are the device's answer.
	OK    *bool  `json:"ok,omitempty"`
	Error string `json:"error,omitempty"`
	// RoundTripMS is the time from the last send to the answer.
	RoundTripMS float64 `json:"round_trip_ms,omitempty"`
	// LateAnswer is set when the device answered after the command had
	// expired (its clock may be behind the platform's).
	LateAnswer bool `json:"late_answer,omitempty"`

	// Effect is the check of an ac.set by the room temperature; empty when
	// none applies.
	Effect       string    `json:"effect,omitempty"`
	EffectDetail string    `json:"effect_detail,omitempty"`
	EffectDue    time.Time `json:"effect_due,omitzero"`
	// The room and setpoint the check compares, °C.
	EffectFromC  *float64 `json:"effect_from_c,omitempty"`
	EffectTarget *float64 `json:"effect_target_c,omitempty"`
	EffectMode   string   `json:"effect_mode,omitempty"`

	// Seq orders commands to one device: they are sent one at a time, in
	// the order they were issued.
	Seq uint64 `json:"seq"`

	sentMono time.Time // the wall clock at the last send, for the round trip
	sentConn string    // the device's connection at the last send
}

// finished reports whether the command will not be sent again.
func (c *CommandRecord) finished() bool {
	return c.State == CommandAcknowledged || c.State == CommandFailed || c.State == CommandExpired
}

// open reports whether the command still needs the engine: an answer, or
// the check of its effect.
func (c *CommandRecord) open() bool { return !c.finished() || c.Effect == EffectChecking }

// clone returns a copy that shares nothing mutable with c.
func (c *CommandRecord) clone() CommandRecord {
	out := *c
	out.Args = maps.Clone(c.Args)
	if c.OK != nil {
		ok := *c.OK
		out.OK = &ok
	}
	return out
}

// Commands sends commands to devices and keeps their audit log in bbolt.
//
// A command is recorded (durably) before it is sent. Commands to one device
// go one at a time, in the order they were issued: the next is published
// when the device has answered the one before, which expired otherwise.
// A command is published on the device's cmd topic at QoS 1, never
// retained, only while the device's twin says it is online, and never
// once its expiry has passed; a sent command without an answer is sent
// again every RetryEvery and whenever the device comes back online, with
// the same id, which the device de-duplicates. Answers come from
// Ingest.Observe.
//
// After a restart the commands not finished are loaded and go on where
// they were: expired by the injected clock, or sent (again) when the
// device is online.
type Commands struct {
	o   CommandsOptions
	log *slog.Logger

	outcomes  *prometheus.CounterVec
	roundTrip *prometheus.HistogramVec
	effects   *prometheus.CounterVec
	openGauge prometheus.GaugeFunc
	writeErrs prometheus.Counter

	mu      sync.Mutex // guards what follows
	recs    map[string]*CommandRecord
	queues  map[string][]*CommandRecord // unanswered commands per device, in order
	durable map[string]bool             // unanswered commands whose record is written
	// checking is the ac.set whose effect is being checked, per device: a
	// later one that is acknowledged supersedes it.
	checking map[string]*CommandRecord
	dirty    map[string]*CommandRecord // to write
	waiters  map[string]chan error     // IssueCommand calls waiting for their record
	seq      uint64

	wake    chan struct{} // the writer has work; capacity 1
	stopped chan struct{} // closed when Run returns
	stop    sync.Once
}

// NewCommands loads the unfinished commands and registers the metrics.
func NewCommands(o CommandsOptions) (*Commands, error) {
	if o.DB == nil || o.Bus == nil || o.Registry == nil || o.Twins == nil {
		return nil, errors.New("commands need a database, a bus, a registry and twins")
	}
	if o.DefaultTTL <= 0 {
		o.DefaultTTL = DefaultCommandTTL
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultCommandMaxTTL
	}
	if o.DefaultTTL > o.MaxTTL {
		return nil, fmt.Errorf("default command expiry %v is beyond the longest, %v", o.DefaultTTL,
			o.MaxTTL)
	}
	if o.RetryEvery <= 0 {
		o.RetryEvery = DefaultCommandRetry
	}
	if o.Every <= 0 {
		o.Every = DefaultCommandEvery
	}
	if o.EffectWithin <= 0 {
		o.EffectWithin = DefaultEffectWithin
	}
	if o.EffectMinC <= 0 {
		o.EffectMinC = DefaultEffectMinC
	}
	if o.Retention <= 0 {
		o.Retention = DefaultCommandRetention
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Commands{
		o:        o,
		log:      o.Logger.With("component", "commands"),
		recs:     map[string]*CommandRecord{},
		queues:   map[string][]*CommandRecord{},
		durable:  map[string]bool{},
		checking: map[string]*CommandRecord{},
		dirty:    map[string]*CommandRecord{},
		waiters:  map[string]chan error{},
		wake:     make(chan struct{}, 1),
		stopped:  make(chan struct{}),
	}
	c.metrics()
	if err := c.load(); err != nil {
		return nil, err
	}
	if reg := o.Registerer; reg != nil {
		for _, col := range []prometheus.Collector{c.outcomes, c.roundTrip, c.effects, c.openGauge,
			c.writeErrs} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("register command metrics: %w", err)
			}
		}
	}
	return c, nil
}

// metrics builds the metrics, before load, which may count superseded
// effect checks.
func (c *Commands) metrics() {
	c.outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_commands_total",
		Help: "Commands by name and outcome: acknowledged, failed, expired, or refused " +
			"(broke the contract before anything was sent).",
	}, []string{"name", "outcome"})
	c.roundTrip = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "waystation_command_round_trip_seconds",
		Help:    "Time from publishing a command to the device's answer, by command name.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms to 16 s
	}, []string{"name"})
	c.effects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_command_effects_total",
		Help: "Checks of ac.set commands by the room temperature, by effect.",
	}, []string{"effect"})
	c.openGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "waystation_commands_open",
		Help: "Commands waiting for their device's answer.",
	}, func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		n := 0
		for _, q := range c.queues {
			n += len(q)
		}
		return float64(n)
	})
	c.writeErrs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "waystation_command_write_errors_total",
		Help: "Failed writes of the command log.",
	})
	for _, name := range schemas.CommandNames {
		for _, out := range []string{CommandAcknowledged, CommandFailed, CommandExpired, "refused"} {
			c.outcomes.WithLabelValues(name, out)
		}
	}
	for _, e := range []string{EffectReached, EffectMoving, EffectNoEffect, EffectUnknown,
		EffectSuperseded} {
		c.effects.WithLabelValues(e)
	}
}

// load reads the unfinished commands and the highest sequence number.
func (c *Commands) load() error {
	var loaded []*CommandRecord
	err := c.o.DB.Update(func(tx *bolt.Tx) error {
		all, err := tx.CreateBucketIfNotExists(bucketCommands)
		if err != nil {
			return err
		}
		open, err := tx.CreateBucketIfNotExists(bucketCommandsOpen)
		if err != nil {
			return err
		}
		c.seq = all.Sequence()
		if k, _ := all.Cursor().Last(); k != nil {
			c.seq = max(c.seq, seqOfID(string(k)))
		}
		return open.ForEach(func(k, _ []byte) error {
			v := all.Get(k)
			if v == nil {
				return nil // written open, then dropped by retention: nothing to do
			}
			rec := new(CommandRecord)
			if err := json.Unmarshal(v, rec); err != nil {
				return fmt.Errorf("command %s: %w", k, err)
			}
			loaded = append(loaded, rec)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load commands: %w", err)
	}
	// The sequence goes on from the highest ever given: the bucket keeps
	// it with every write.
	slices.SortFunc(loaded, func(a, b *CommandRecord) int { return cmpSeq(a.Seq, b.Seq) })
	for _, rec := range loaded {
		c.seq = max(c.seq, rec.Seq)
		c.recs[rec.ID] = rec
		if !rec.finished() {
			c.queues[rec.Device] = append(c.queues[rec.Device], rec)
			c.durable[rec.ID] = true
		}
		if rec.Effect == EffectChecking {
			c.supersede(rec, c.o.Now())
			c.checking[rec.Device] = rec
		}
	}
	if len(loaded) > 0 {
		c.log.Info("unfinished commands loaded", "count", len(loaded))
	}
	return nil
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// newID returns a command id: the creation time (UTC, to the second) and
// the sequence number, so ids sort by time and stay unique even when the
// clock goes back.
func newID(at time.Time, seq uint64) string {
	return fmt.Sprintf("c%s-%06d", at.UTC().Format("20060102-150405"), seq)
}

// seqOfID returns the sequence number in an id, 0 when there is none.
func seqOfID(id string) uint64 {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return 0
	}
	var n uint64
	for _, ch := range id[i+1:] {
		if ch < '0' || ch > '9' {
			return 0
		}
		n = n*10 + uint64(ch-'0')
	}
	return n
}

// commandKinds is the kind of device each command is for; a command not
// listed goes to any kind.
var commandKinds = map[string]schemas.Kind{
	schemas.CmdACSet:       schemas.KindAC,
	schemas.CmdLockUnlock:  schemas.KindLock,
	schemas.CmdLockMode:    schemas.KindLock,
	schemas.CmdChargerSlot: schemas.KindCharger,
}

// Check reports whether req is a command the device takes, without
// sending anything.
func (c *Commands) Check(req CommandRequest) (devices.Device, error) {
	d, err := c.o.Registry.Device(req.Device)
	if err != nil {
		return devices.Device{}, fmt.Errorf("device %q: %w", req.Device, err)
	}
	if err := c.o.Partition.Check(d.Station); err != nil {
		return d, fmt.Errorf("%w: device %s at station %s: %v", ErrInvalidCommand, d.ID, d.Station,
			err)
	}
	if !slices.Contains(schemas.CommandNames, req.Name) {
		return d, fmt.Errorf("%w: unknown command %q (want one of %s)", ErrInvalidCommand,
			req.Name, strings.Join(schemas.CommandNames, ", "))
	}
	if k, ok := commandKinds[req.Name]; ok && k != d.Kind {
		return d, fmt.Errorf("%w: %s is for %s devices; %s is a %s", ErrInvalidCommand, req.Name,
			k, d.ID, d.Kind)
	}
	if req.TTL < 0 || req.TTL > c.o.MaxTTL || (req.TTL > 0 && req.TTL < time.Second) {
		return d, fmt.Errorf("%w: expiry %v: want 1s to %v", ErrInvalidCommand, req.TTL, c.o.MaxTTL)
	}
	if req.Issuer == "" || len(req.Issuer) > 128 || strings.ContainsAny(req.Issuer, "\n\r\t") {
		return d, fmt.Errorf("%w: issuer %q: want 1 to 128 characters on one line",
			ErrInvalidCommand, req.Issuer)
	}
	if len(req.Reason) > 256 {
		return d, fmt.Errorf("%w: reason longer than 256 bytes", ErrInvalidCommand)
	}
	probe := schemas.Command{ID: "check", Name: req.Name, Args: req.Args, ExpiresAt: 1}
	if err := probe.Validate(); err != nil {
		return d, fmt.Errorf("%w: %v", ErrInvalidCommand, err)
	}
	return d, nil
}

// IssueCommand implements CommandIssuer: it checks the request, records it
// durably and sends it when the device is online and nothing is queued
// before it. It returns once the record is written.
func (c *Commands) IssueCommand(req CommandRequest) (string, error) {
	rec, err := c.Issue(req)
	if err != nil {
		return "", err
	}
	return rec.ID, nil
}

// Issue is IssueCommand returning the whole record as it stood when
// written.
func (c *Commands) Issue(req CommandRequest) (CommandRecord, error) {
	d, err := c.Check(req)
	if err != nil {
		if errors.Is(err, ErrInvalidCommand) && slices.Contains(schemas.CommandNames, req.Name) {
			c.outcomes.WithLabelValues(req.Name, "refused").Inc()
		}
		return CommandRecord{}, err
	}
	select {
	case <-c.stopped:
		return CommandRecord{}, ErrCommandsStopped
	default:
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = c.o.DefaultTTL
	}
	now := c.o.Now()
	done := make(chan error, 1)

	c.mu.Lock()
	c.seq++
	rec := &CommandRecord{
		ID: newID(now, c.seq), Device: d.ID, Station: d.Station, Kind: d.Kind, Name: req.Name,
		Args: maps.Clone(req.Args), Issuer: req.Issuer, Reason: req.Reason, Created: now,
		ExpiresAt: now.Add(ttl), State: CommandPending, Seq: c.seq,
	}
	c.recs[rec.ID] = rec
	c.queues[d.ID] = append(c.queues[d.ID], rec)
	c.dirty[rec.ID] = rec
	c.waiters[rec.ID] = done
	c.mu.Unlock()
	c.poke()

	select {
	case err = <-done:
	case <-c.stopped:
		select {
		case err = <-done: // written by the last flush
		default:
			err = ErrCommandsStopped
		}
	}
	if err != nil {
		c.mu.Lock()
		c.drop(rec)
		delete(c.waiters, rec.ID)
		c.mu.Unlock()
		return CommandRecord{}, fmt.Errorf("record command: %w", err)
	}
	c.log.Info("command issued", "command", rec.ID, "device", d.ID, "name", req.Name,
		"issuer", req.Issuer, "reason", req.Reason)

	c.mu.Lock()
	c.durable[rec.ID] = true
	snap := rec.clone()
	acts := c.pump(d.ID, false, c.o.Now())
	c.mu.Unlock()
	c.act(acts)
	return snap, nil
}

// drop forgets a command whose record could not be written. c.mu is held.
func (c *Commands) drop(rec *CommandRecord) {
	delete(c.recs, rec.ID)
	delete(c.durable, rec.ID)
	delete(c.dirty, rec.ID)
	c.unqueue(rec)
}

// unqueue removes rec from its device's queue. c.mu is held.
func (c *Commands) unqueue(rec *CommandRecord) {
	q := c.queues[rec.Device]
	if i := slices.Index(q, rec); i >= 0 {
		q = slices.Delete(q, i, i+1)
	}
	if len(q) == 0 {
		delete(c.queues, rec.Device)
	} else {
		c.queues[rec.Device] = q
	}
}

// actions are what to do once c.mu is let go: publish and tell.
type actions struct {
	sends   []send
	notices []Notice
}

type send struct {
	topic   string
	payload []byte
	id      string
}

func (a *actions) add(b actions) {
	a.sends = append(a.sends, b.sends...)
	a.notices = append(a.notices, b.notices...)
}

// act notifies and publishes, without c.mu. Notices go first, so a
// command's "sent" is told before its answer can be.
func (c *Commands) act(a actions) {
	if c.o.Notifier != nil {
		for _, n := range a.notices {
			c.o.Notifier.Notify(n)
		}
	}
	for _, s := range a.sends {
		if err := c.o.Bus.Publish(s.topic, 1, false, s.payload); err != nil {
			c.log.Warn("publish command", "command", s.id, "err", err)
		}
	}
}

// pump sends the first unanswered command of a device when it may:
// written, not expired, the device online, and not sent within RetryEvery
// (unless force: the device just came back). Commands found expired on
// the way are finished. c.mu is held.
func (c *Commands) pump(device string, force bool, now time.Time) actions {
	var a actions
	for {
		q := c.queues[device]
		if len(q) == 0 {
			return a
		}
		rec := q[0]
		if !now.Before(rec.ExpiresAt) {
			a.add(c.finish(rec, CommandExpired, now))
			continue
		}
		if !c.durable[rec.ID] {
			return a
		}
		tw, ok := c.o.Twins.Get(device)
		if !ok || !tw.Online {
			return a
		}
		// A sent command goes again after RetryEvery, or at once when the
		// device is on another connection than the one it was sent to.
		if rec.State == CommandSent && now.Before(rec.LastSent.Add(c.o.RetryEvery)) &&
			(!force || tw.Conn == rec.sentConn) {
			return a
		}
		payload, err := json.Marshal(schemas.Command{
			Meta: schemas.Meta{TS: now.UnixMilli()}, ID: rec.ID, Name: rec.Name, Args: rec.Args,
			ExpiresAt: rec.ExpiresAt.UnixMilli(),
		})
		if err != nil { // Check encoded these arguments already
			a.add(c.finishFailed(rec, "cannot encode: "+err.Error(), now))
			continue
		}
		first := rec.Attempts == 0
		rec.Attempts++
		rec.State = CommandSent
		rec.LastSent = now
		rec.sentMono = time.Now()
		rec.sentConn = tw.Conn
		if first {
			rec.FirstSent = now
			a.notices = append(a.notices, c.notice(rec, NoticeCommandSent, now))
		} else {
			c.log.Debug("command sent again", "command", rec.ID, "device", device,
				"attempt", rec.Attempts)
		}
		c.dirty[rec.ID] = rec
		a.sends = append(a.sends, send{id: rec.ID, payload: payload,
			topic: schemas.DeviceTopic(rec.Station, device, schemas.ChannelCmd)})
		return a
	}
}
