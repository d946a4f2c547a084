package controller

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// Message outcomes counted in waystation_messages_total.
const (
	ResultOK            = "ok"
	ResultInvalid       = "invalid"        // breaks the contract
	ResultUnknownDevice = "unknown_device" // no such device, or not at that station
	ResultDropped       = "dropped"        // the ingest queue was full
)

// IngestOptions configures Ingest. Registry, Twins and Bus are required.
type IngestOptions struct {
	Bus      Bus
	Registry *devices.Registry
	Twins    *devices.Twins
	// Shards is the number of workers; a device's messages always go to the
	// same one, in order. Default 4.
	Shards int
	// QueueDepth is the capacity of each shard's queue. Default 16384.
	QueueDepth int
	// QueueBytes bounds the payload bytes waiting in all queues together, so
	// a few devices sending large messages fast cannot take the memory.
	// Default 64 MiB.
	QueueBytes int64
	// InvalidLogEvery bounds logging of refused messages to one line per
	// device per interval. Default one minute.
	InvalidLogEvery time.Duration
	Now             func() time.Time
	Logger          *slog.Logger
	Registerer      prometheus.Registerer
	// Partition, when it splits the stations, makes ingest subscribe to
	// the topics of its own stations only, station by station (see
	// SubscribeStation), rather than to every station's.
	Partition Partition
}

// Ingest subscribes to every device topic, checks each message against the
// contract and the registry, and updates the twins.
type Ingest struct {
	o      IngestOptions
	log    *slog.Logger
	seed   maphash.Seed
	shards []chan inbound

	messages *prometheus.CounterVec
	// counted holds the children of messages by channel and result, so
	// that a message does not look its counter up by label values.
	counted   map[schemas.Channel]*[4]prometheus.Counter
	depth     prometheus.GaugeFunc
	online    prometheus.GaugeFunc
	latency   prometheus.Histogram
	transient *prometheus.CounterVec

	logMu    sync.Mutex // guards loggedAt
	loggedAt map[string]time.Time

	observers []func(Observation)
	ready     chan struct{} // closed once every subscription is made

	stationMu  sync.Mutex      // guards stations
	stationSub map[string]bool // stations subscribed to, with a partition
	queued     atomic.Int64    // bytes waiting in the queues
}

// Observation is a valid message after it updated the twin; later stages
// (alerts, commands, access) observe these.
type Observation struct {
	Device   devices.Device
	Channel  schemas.Channel
	At       time.Time
	Retained bool
	Presence devices.Presence // for status messages
	Status   *schemas.Status
	Telem    *schemas.Telemetry
	Event    *schemas.Event
	Result   *schemas.CommandResult
	Access   *schemas.AccessRequest
}

type inbound struct {
	topic    string
	payload  []byte
	retained bool
	at       time.Time
}

// NewIngest builds an Ingest and registers its metrics.
func NewIngest(o IngestOptions) (*Ingest, error) {
	if o.Bus == nil || o.Registry == nil || o.Twins == nil {
		return nil, errors.New("ingest needs a bus, a registry and twins")
	}
	if o.Shards <= 0 {
		o.Shards = 4
	}
	if o.QueueDepth <= 0 {
		o.QueueDepth = 16384
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 64 << 20
	}
	if o.InvalidLogEvery <= 0 {
		o.InvalidLogEvery = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	in := &Ingest{
		o:        o,
		log:      o.Logger.With("component", "ingest"),
		seed:     maphash.MakeSeed(),
		loggedAt: map[string]time.Time{},
		ready:    make(chan struct{}),
	}
	for range o.Shards {
		in.shards = append(in.shards, make(chan inbound, o.QueueDepth))
	}

	in.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_messages_total",
		Help: "Device messages received by the controller, by channel and outcome.",
	}, []string{"channel", "result"})
	in.depth = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "waystation_ingest_queue_depth",
		Help: "Messages waiting in the ingest queues.",
	}, func() float64 { return float64(in.QueueDepth()) })
	in.online = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "waystation_devices_online",
		Help: "Devices whose twin says online.",
	}, func() float64 { return float64(o.Twins.Online()) })
	queuedBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "waystation_ingest_queue_bytes",
		Help: "Payload bytes waiting in the ingest queues.",
	}, func() float64 { return float64(in.queued.Load()) })
	if err := o.Registerer.Register(queuedBytes); err != nil {
		return nil, fmt.Errorf("register ingest metrics: %w", err)
	}
	in.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "waystation_ingest_seconds",
		Help:    "Time from a message's arrival to its twin being updated.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 4, 9),
	})
	for _, c := range []prometheus.Collector{in.messages, in.depth, in.online, in.latency} {
		if err := o.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("register ingest metrics: %w", err)
		}
	}
	in.counted = map[schemas.Channel]*[4]prometheus.Counter{}
	for _, ch := range schemas.Channels {
		if !ch.FromDevice() {
			continue
		}
		var cs [4]prometheus.Counter
		for i, r := range results {
			cs[i] = in.messages.WithLabelValues(string(ch), r)
		}
		in.counted[ch] = &cs
	}
	return in, nil
}

// results are the outcomes of a message, in the order of Ingest.counted.
var results = [4]string{ResultOK, ResultInvalid, ResultUnknownDevice, ResultDropped}

// count counts a message of channel ch with result r.
func (in *Ingest) count(ch schemas.Channel, r string) {
	if cs, ok := in.counted[ch]; ok {
		for i := range results {
			if results[i] == r {
				cs[i].Inc()
				return
			}
		}
	}
	in.messages.WithLabelValues(string(ch), r).Inc()
}

// Observe adds a function called with every valid message, on the ingest
// worker that handled it. Call before Run.
func (in *Ingest) Observe(f func(Observation)) { in.observers = append(in.observers, f) }

// Ready is closed once Run has made its subscriptions.
func (in *Ingest) Ready() <-chan struct{} { return in.ready }

// QueueDepth returns the number of messages waiting.
func (in *Ingest) QueueDepth() int {
	n := 0
	for _, q := range in.shards {
		n += len(q)
	}
	return n
}

// Run subscribes and processes messages until ctx ends. It returns after
// its workers have stopped.
func (in *Ingest) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, q := range in.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.work(ctx, q)
		}()
	}
	defer wg.Wait()

	if err := in.subscribe(); err != nil {
		return err
	}
	close(in.ready)
	in.log.Info("ingest running", "shards", len(in.shards))
	<-ctx.Done()
	return nil
}

// enqueue is the bus handler. It never blocks on telemetry; other messages
// wait up to urgentWait for room.
func (in *Ingest) enqueue(topic string, payload []byte, retained bool) {
	m := inbound{topic: topic, payload: payload, retained: retained, at: in.o.Now()}
	q := in.shards[in.shard(topic)]
	size := m.size()
	// Telemetry is periodic: under overload the next report replaces a lost
	// one. A status, an event (a door forced, an AED taken), a command's
	// result or an access request is not repeated, so it may go over the
	// byte budget and waits a moment for room, slowing its sender instead.
	urgent := !strings.HasSuffix(topic, "/"+string(schemas.ChannelTelemetry))
	if in.queued.Add(size) <= in.o.QueueBytes || urgent {
		select {
		case q <- m:
			return
		default:
		}
		if urgent {
			wait := time.NewTimer(urgentWait)
			select {
			case q <- m:
				wait.Stop()
				return
			case <-wait.C:
			}
		}
	}
	in.queued.Add(-size)
	ch := schemas.Channel("unknown")
	if t, err := schemas.ParseTopic(topic); err == nil {
		ch = t.Channel
	}
	in.count(ch, ResultDropped)
}

// urgentWait is how long a message that is not telemetry waits for room in
// a full queue before it is dropped.
const urgentWait = 2 * time.Second

// shard picks the queue of the device a topic belongs to.
func (in *Ingest) shard(topic string) int {
	// waystation/v1/{s}/{d}/...: hash up to the end of the device id.
	end, slashes := len(topic), 0
	for i := len(schemas.Prefix); i < len(topic); i++ {
		if topic[i] == '/' {
			slashes++
			if slashes == 2 {
				end = i
				break
			}
		}
	}
	return int(maphash.String(in.seed, topic[:end]) % uint64(len(in.shards)))
}

// work handles a queue's messages until ctx ends, then what is left in it:
// the broker acknowledged those messages, so they are not dropped on a
// clean stop.
func (in *Ingest) work(ctx context.Context, q chan inbound) {
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case m := <-q:
					in.handle(m)
				default:
					return
				}
			}
		case m := <-q:
			in.handle(m)
		}
	}
}

// size is what a queued message costs, roughly: its bytes and the entry.
func (m inbound) size() int64 { return int64(len(m.topic) + len(m.payload) + 64) }

func (in *Ingest) handle(m inbound) {
	defer in.queued.Add(-m.size())
	t, err := schemas.ParseTopic(m.topic)
	if err != nil {
		// The broker's ACL keeps these out; an external broker may not.
		in.count("unknown", ResultInvalid)
		in.refusedLog("topic:"+m.topic, "refused message on a bad topic", "topic", m.topic, "err", err)
		return
	}
	ch := string(t.Channel)
	if t.Channel == schemas.ChannelStatus && len(m.payload) == 0 {
		return // a retained status being cleared, not a message
	}
	d, err := in.o.Registry.Device(t.Device)
	if err != nil || d.Station != t.Station {
		in.count(t.Channel, ResultUnknownDevice)
		in.refusedLog(t.Device, "message from an unregistered device", "device", t.Device,
			"station", t.Station, "channel", ch)
		return
	}

	obs := Observation{Device: d, Channel: t.Channel, At: m.at, Retained: m.retained}
	err = in.apply(&obs, m.payload)
	if err != nil {
		in.count(t.Channel, ResultInvalid)
		in.o.Twins.Refused(d, fmt.Sprintf("%s: %v", ch, err), m.at)
		in.refusedLog(d.ID, "refused invalid message", "device", d.ID, "station", d.Station,
			"channel", ch, "err", err)
		if t.Channel == schemas.ChannelStatus {
			in.clearRetained(m.topic)
		}
		return
	}
	in.count(t.Channel, ResultOK)
	in.latency.Observe(in.o.Now().Sub(m.at).Seconds())
	for _, f := range in.observers {
		f(obs)
	}
}

// clearRetained deletes the retained message of a status topic whose
// payload was refused, so the broker does not replay it to every new
// subscriber and at every restart. Statuses are always retained, so a
// refused live status is also the one the broker keeps.
func (in *Ingest) clearRetained(topic string) {
	if err := in.o.Bus.Publish(topic, 1, true, nil); err != nil {
		in.log.Warn("clear refused retained status", "topic", topic, "err", err)
	}
}

// apply decodes a payload and updates the twin.
func (in *Ingest) apply(obs *Observation, payload []byte) error {
	d := obs.Device
	switch obs.Channel {
	case schemas.ChannelStatus:
		st, err := schemas.DecodeStatus(payload)
		if err != nil {
			return err
		}
		if st.Kind != d.Kind {
			return &schemas.FieldError{Field: "kind",
				Reason: fmt.Sprintf("%q does not match the registered kind %q", st.Kind, d.Kind)}
		}
		obs.Status = &st
		if obs.Retained {
			obs.Presence = in.o.Twins.ReplayStatus(d, st, obs.At)
		} else {
			obs.Presence = in.o.Twins.ApplyStatus(d, st, obs.At)
		}
		switch obs.Presence {
		case devices.PresenceOnline:
			in.log.Debug("device online", "device", d.ID, "station", d.Station, "conn", st.Conn)
		case devices.PresenceOffline:
			in.log.Debug("device offline", "device", d.ID, "station", d.Station, "conn", st.Conn)
		case devices.PresenceStale:
			in.log.Debug("ignored the will of a replaced connection", "device", d.ID, "conn", st.Conn)
		}
	case schemas.ChannelTelemetry:
		tm, err := schemas.DecodeTelemetry(d.Kind, payload)
		if err != nil {
			return err
		}
		obs.Telem = &tm
		if _, err := in.o.Twins.ApplyTelemetry(d, tm, obs.At); err != nil {
			return err
		}
	case schemas.ChannelEvent:
		ev, err := schemas.DecodeEvent(payload)
		if err != nil {
			return err
		}
		obs.Event = &ev
		in.o.Twins.Seen(d, ev.Meta, obs.At)
	case schemas.ChannelCmdResult:
		r, err := schemas.DecodeCommandResult(payload)
		if err != nil {
			return err
		}
		obs.Result = &r
		in.o.Twins.Seen(d, r.Meta, obs.At)
	case schemas.ChannelAccessReq:
		if d.Kind != schemas.KindLock {
			return &schemas.FieldError{Reason: "only door terminals send access requests"}
		}
		r, err := schemas.DecodeAccessRequest(payload)
		if err != nil {
			return err
		}
		obs.Access = &r
		in.o.Twins.Seen(d, r.Meta, obs.At)
	default:
		return &schemas.FieldError{Reason: "devices do not publish on " + string(obs.Channel)}
	}
	return nil
}

// refusedLog logs a refused message at most once per key per interval.
func (in *Ingest) refusedLog(key, msg string, args ...any) {
	now := in.o.Now()
	in.logMu.Lock()
	last, ok := in.loggedAt[key]
	if ok && now.Sub(last) < in.o.InvalidLogEvery {
		in.logMu.Unlock()
		return
	}
	in.loggedAt[key] = now
	if len(in.loggedAt) > 100000 {
		clear(in.loggedAt) // bound memory under a flood of distinct keys
	}
	in.logMu.Unlock()
	in.log.Warn(msg, args...)
}
