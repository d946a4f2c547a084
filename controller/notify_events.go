package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waystation/waystation/devices"
)

// Defaults of EventsOptions.
const (
	DefaultEventsReplay    = 512
	DefaultEventsQueue     = 128
	DefaultEventsHeartbeat = 15 * time.Second
	DefaultEventsMaxSubs   = 1000
)

// ErrEventsClosed means the event stream has stopped: the server is going
// down.
var ErrEventsClosed = errors.New("the event stream has stopped")

// ErrTooManySubscribers means the event stream has as many subscribers as
// it takes.
var ErrTooManySubscribers = errors.New("too many event stream subscribers")

// EventsOptions configures the live event stream. Registry is required: it
// says which organisation a notice's station belongs to, so each
// subscriber sees only what is in its operator's scope.
type EventsOptions struct {
	Registry *devices.Registry
	// Replay is how many recent events are kept for subscribers that come
	// back with a Last-Event-ID. Default DefaultEventsReplay.
	Replay int
	// Queue is how many events may wait for one subscriber; a subscriber
	// that falls further behind is dropped and reconnects. Default
	// DefaultEventsQueue.
	Queue int
	// Heartbeat is how often an idle stream gets a comment line, which
	// keeps proxies from closing it and finds dead connections. Default
	// DefaultEventsHeartbeat.
	Heartbeat time.Duration
	// MaxSubscribers bounds the open streams. Default DefaultEventsMaxSubs.
	MaxSubscribers int
	Logger         *slog.Logger
	// Registerer receives the stream's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Events is the hub of the live event stream, GET /api/v1/events: every
// notice it is given goes out at once to each subscriber whose scope covers
// the notice's station. It is a Notifier; Notify never blocks on a
// subscriber.
//
// Event ids are "EPOCH-SEQ": SEQ counts up from 1 in each run of the
// server and EPOCH tells runs apart, so a subscriber that comes back after
// a restart is told it may have missed events (a "gap" event) instead of
// being replayed the wrong ones.
type Events struct {
	o     EventsOptions
	log   *slog.Logger
	epoch string

	mu     sync.Mutex // guards everything below
	seq    uint64
	ring   []event // the last o.Replay events, oldest first from ringAt
	ringAt int
	subs   map[*subscriber]struct{}
	closed bool

	subscribers prometheus.Gauge
	sent        prometheus.Counter
	dropped     *prometheus.CounterVec
}

// event is one notice as the stream sends it.
type event struct {
	seq     uint64
	org     string // the organisation of the notice's station; "" for none
	station string
	typ     string
	data    []byte // the notice as JSON, one line
}

// EventFilter narrows a stream to what a subscriber asked for; the zero
// value passes everything in scope.
type EventFilter struct {
	Station string // only this station's notices
	// Type passes notices of this type, or whose type starts with it and
	// a dot: "alert" passes "alert.raised".
	Type string
}

// pass reports whether ev is in op's scope and passes f.
func (f EventFilter) pass(op Operator, ev event) bool {
	if !op.InScope(ev.org) || (f.Station != "" && ev.station != f.Station) {
		return false
	}
	return f.Type == "" || ev.typ == f.Type || strings.HasPrefix(ev.typ, f.Type+".")
}

// subscriber is one open stream.
type subscriber struct {
	op     Operator
	filter EventFilter
	ch     chan event // closed when the subscriber is dropped or the hub stops
	// why says why ch was closed; set before the close.
	why string
}

// Reasons a subscriber's stream ends from the server's side.
const (
	dropSlow   = "slow"   // its queue was full
	dropClosed = "closed" // the server is stopping
	dropScope  = "auth"   // its operator was revoked
)

// NewEvents builds the event hub and registers its metrics.
func NewEvents(o EventsOptions) (*Events, error) {
	if o.Registry == nil {
		return nil, errors.New("events: a registry is required")
	}
	if o.Replay <= 0 {
		o.Replay = DefaultEventsReplay
	}
	if o.Queue <= 0 {
		o.Queue = DefaultEventsQueue
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultEventsHeartbeat
	}
	if o.MaxSubscribers <= 0 {
		o.MaxSubscribers = DefaultEventsMaxSubs
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Events{o: o, log: o.Logger.With("component", "events"),
		epoch: strconv.FormatInt(time.Now().UnixNano(), 36), subs: map[*subscriber]struct{}{},
		ring: make([]event, 0, o.Replay)}
	e.subscribers = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "waystation_events_subscribers",
		Help: "Open streams of GET /api/v1/events.",
	})
	e.sent = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "waystation_events_total",
		Help: "Notices put on the live event stream.",
	})
	e.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_events_subscribers_dropped_total",
		Help: "Event streams the server ended, by reason: slow (fell behind), auth " +
			"(operator revoked), closed (server stopping).",
	}, []string{"reason"})
	for _, r := range []string{dropSlow, dropScope, dropClosed} {
		e.dropped.WithLabelValues(r)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{e.subscribers, e.sent, e.dropped} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register events metrics: %w", err)
			}
		}
	}
	return e, nil
}

// Notify implements Notifier: it puts n on the stream of every subscriber
// whose scope covers n's station. A subscriber whose queue is full is
// dropped rather than waited for.
func (e *Events) Notify(n Notice) {
	data, err := json.Marshal(n)
	if err != nil {
		e.log.Error("notice not sent on the event stream: cannot encode it", "key", n.Key,
			"type", n.Type, "err", err)
		return
	}
	org := ""
	if n.Station != "" {
		if st, err := e.o.Registry.Station(n.Station); err == nil {
			org = st.Org
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.seq++
	ev := event{seq: e.seq, org: org, station: n.Station, typ: n.Type, data: data}
	if len(e.ring) < e.o.Replay {
		e.ring = append(e.ring, ev)
	} else {
		e.ring[e.ringAt] = ev
		e.ringAt = (e.ringAt + 1) % e.o.Replay
	}
	e.sent.Inc()
	for s := range e.subs {
		if !s.filter.pass(s.op, ev) {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			e.dropLocked(s, dropSlow)
			e.log.Warn("event subscriber dropped: it fell behind", "operator", s.op.Name,
				"queue", e.o.Queue)
		}
	}
}

// Run waits for ctx to end, then ends every stream and refuses new ones.
// Open streams end at once, so the HTTP server's shutdown is not held up
// by them.
func (e *Events) Run(ctx context.Context) error {
	<-ctx.Done()
	e.Close()
	return nil
}

// Close ends every stream and refuses new ones.
func (e *Events) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for s := range e.subs {
		e.dropLocked(s, dropClosed)
	}
}

// dropLocked ends a subscriber's stream; e.mu is held.
func (e *Events) dropLocked(s *subscriber, why string) {
	if _, ok := e.subs[s]; !ok {
		return
	}
	delete(e.subs, s)
	s.why = why
	close(s.ch)
	e.subscribers.Dec()
	e.dropped.WithLabelValues(why).Inc()
}

// subscribe opens a stream for op of the notices that pass f. It returns
// the events op missed since
// lastID ("" for a new subscriber: none), and whether events were missed
// that are no longer kept (or belong to an earlier run of the server).
// Between the replay and the subscriber's channel no event is lost or sent
// twice.
func (e *Events) subscribe(op Operator, f EventFilter, lastID string) (_ *subscriber,
	replay []event, gap bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, nil, false, ErrEventsClosed
	}
	if len(e.subs) >= e.o.MaxSubscribers {
		return nil, nil, false, ErrTooManySubscribers
	}
	s := &subscriber{op: op, filter: f, ch: make(chan event, e.o.Queue)}
	e.subs[s] = struct{}{}
	e.subscribers.Inc()

	if lastID == "" {
		return s, nil, false, nil
	}
	after, ok := e.parseID(lastID)
	if !ok || after > e.seq {
		// An id of an earlier run (or not ours): everything kept may be new.
		after, gap = 0, true
	}
	oldest := e.seq + 1 - uint64(len(e.ring))
	if after+1 < oldest {
		gap = true
	}
	for i := range e.ring {
		ev := e.ring[(e.ringAt+i)%len(e.ring)]
		if ev.seq > after && f.pass(op, ev) {
			replay = append(replay, ev)
		}
	}
	return s, replay, gap, nil
}

// unsubscribe ends s's stream from the subscriber's side.
func (e *Events) unsubscribe(s *subscriber) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.subs[s]; ok {
		delete(e.subs, s)
		e.subscribers.Dec()
	}
}

// revoke ends s's stream because its operator may no longer read.
func (e *Events) revoke(s *subscriber) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dropLocked(s, dropScope)
}

// id is the SSE id of the event numbered seq.
func (e *Events) id(seq uint64) string { return e.epoch + "-" + strconv.FormatUint(seq, 10) }

// parseID reads an id of this run; ok is false for any other.
func (e *Events) parseID(id string) (uint64, bool) {
	epoch, seq, ok := strings.Cut(strings.TrimSpace(id), "-")
	if !ok || epoch != e.epoch {
		return 0, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	return n, err == nil
}
