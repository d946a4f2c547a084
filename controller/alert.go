package controller

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// Alert severities, most urgent first.
const (
	SeverityCritical = "critical"
	SeverityMajor    = "major"
	SeverityMinor    = "minor"
	SeverityWarning  = "warning"
)

// Severities lists the severities, most urgent first.
var Severities = []string{SeverityCritical, SeverityMajor, SeverityMinor, SeverityWarning}

// Alert states.
const (
	AlertFiring       = "firing"
	AlertAcknowledged = "acknowledged"
	AlertResolved     = "resolved"
)

// AlertStates lists the states of an alert's lifecycle, in order.
var AlertStates = []string{AlertFiring, AlertAcknowledged, AlertResolved}

// Notice types of alert changes.
const (
	NoticeAlertRaised       = "alert.raised"
	NoticeAlertReopened     = "alert.reopened"  // a resolved alert came back within the flap window
	NoticeAlertChanged      = "alert.changed"   // its severity or summary changed
	NoticeAlertEscalated    = "alert.escalated" // critical, unacknowledged for too long
	NoticeAlertAcknowledged = "alert.acknowledged"
	NoticeAlertResolved     = "alert.resolved"
	NoticeAlertUnsilenced   = "alert.unsilenced" // its silence ended while it still fires
)

// ResolvedByCondition is Alert.ResolvedBy when the condition cleared.
const ResolvedByCondition = "condition"

// Alert is one problem of one device or station under one rule. Its JSON
// field names are stable: the console, the MQTT topic, webhooks and the CLI
// read them.
type Alert struct {
	ID      string `json:"id"`
	Station string `json:"station"`
	// Device is empty for a station alert (station.down).
	Device string `json:"device,omitempty"`
	Rule   string `json:"rule"`
	// Subject tells apart alerts of one rule on one device, such as the
	// slots of a charger cabinet ("3"); usually empty.
	Subject  string `json:"subject,omitempty"`
	Severity string `json:"severity"`
	State    string `json:"state"`
	Summary  string `json:"summary"`

	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Count is how many times the problem was seen: each event, each time
	// a condition came back.
	Count int `json:"count"`

	// Escalation is how many times the alert was escalated; NextEscalation
	// is when it will be again, unless acknowledged first.
	Escalation     int       `json:"escalation"`
	NextEscalation time.Time `json:"next_escalation,omitzero"`

	AckedBy string    `json:"acked_by,omitempty"`
	AckedAt time.Time `json:"acked_at,omitzero"`
	AckNote string    `json:"ack_note,omitempty"`

	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// ResolvedBy is "condition" when the condition cleared, else the
	// operator who resolved it.
	ResolvedBy string `json:"resolved_by,omitempty"`
	// Manual alerts (event-only: a door forced, an AED cabinet opened) are
	// resolved by a person, never by themselves.
	Manual bool `json:"manual,omitempty"`

	// Silenced alerts are recorded but notify nobody; SilencedBy is the
	// silence.
	Silenced   bool   `json:"silenced"`
	SilencedBy string `json:"silenced_by,omitempty"`
	// Parent is the station alert this device alert is folded under.
	Parent string `json:"parent,omitempty"`

	// Version grows with every change; notices carry it in their keys.
	Version int64 `json:"version"`

	// Active says whether the condition held at the last message; not for
	// people.
	Active bool `json:"active"`
}

// Open reports whether the alert is not resolved.
func (a Alert) Open() bool { return a.State != AlertResolved }

// key identifies the problem an alert is about.
func (a Alert) key() string { return alertKey(a.Station, a.Device, a.Rule, a.Subject) }

func alertKey(station, device, rule, subject string) string {
	return station + "/" + device + "/" + rule + "/" + subject
}

// AlertFilter selects alerts; empty fields match everything.
type AlertFilter struct {
	State    string
	Severity string
	Station  string
	Device   string
	Rule     string
	// Stations, when not nil, keeps only alerts of these stations (an
	// operator's scope).
	Stations map[string]bool
}

func (f AlertFilter) match(a *Alert) bool {
	switch {
	case f.State != "" && a.State != f.State,
		f.Severity != "" && a.Severity != f.Severity,
		f.Station != "" && a.Station != f.Station,
		f.Device != "" && a.Device != f.Device,
		f.Rule != "" && a.Rule != f.Rule,
		f.Stations != nil && !f.Stations[a.Station]:
		return false
	}
	return true
}

// Errors of alert and silence calls.
var (
	ErrAlertNotFound   = errors.New("no such alert")
	ErrAlertState      = errors.New("alert state")
	ErrSilenceNotFound = errors.New("no such silence")
	ErrInvalidSilence  = errors.New("invalid silence")
)

// StaleTerminalSource tells which door terminals hold an allow-list too old;
// *AllowLists is one.
type StaleTerminalSource interface {
	StaleTerminals() []TerminalStatus
}

// AlertOptions configures Alerts. DB, Registry and Twins are required; the
// zero value of every threshold is its documented default.
type AlertOptions struct {
	DB       *bolt.DB
	Registry *devices.Registry
	Twins    *devices.Twins
	// Bus, when set, receives every raise and change on
	// waystation/v1/alerts/{station}, QoS 1.
	Bus Bus
	// Notifier, when set, is told every raise and change of an alert that
	// is not silenced.
	Notifier Notifier
	// Commands, when set, switches off an overheating charger slot.
	Commands CommandIssuer
	// AllowLists, when set, raises lock.allowlist_stale for stale door
	// terminals.
	AllowLists StaleTerminalSource
	// Location is the time zone of dates (AED pads); default time.Local.
	Location *time.Location

	// Grace is how long after start devices found offline have to come
	// back before anyone is paged. Default 2 minutes.
	Grace time.Duration
	// StationWindow is how long a device's offline alert waits for the
	// other devices of its station: when every device of the station goes
	// quiet within it, one station.down alert is raised instead. Default
	// 2 minutes; a device alone at its station is not held.
	StationWindow time.Duration
	// FlapWindow: a condition that comes back within it reopens its
	// resolved alert. Default 5 minutes.
	FlapWindow time.Duration
	// EscalateAfter is how long a critical alert may stay unacknowledged
	// before it is escalated; each further escalation waits twice as long
	// as the one before, up to EscalateMax. Defaults 10 minutes and 2 hours.
	EscalateAfter time.Duration
	EscalateMax   time.Duration
	// Retention is how long resolved alerts are kept. Default 30 days.
	Retention time.Duration
	// Every is how often timers (grace, escalation, silences, door held
	// open, stale allow-lists) are checked. Default 10 seconds.
	Every time.Duration
	// Rules holds the thresholds of the rules.
	Rules RuleOptions

	Now    func() time.Time
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Default timings of AlertOptions.
const (
	DefaultAlertGrace         = 2 * time.Minute
	DefaultAlertStationWindow = 2 * time.Minute
	DefaultAlertFlapWindow    = 5 * time.Minute
	DefaultEscalateAfter      = 10 * time.Minute
	DefaultEscalateMax        = 2 * time.Hour
	DefaultAlertRetention     = 30 * 24 * time.Hour
	DefaultAlertEvery         = 10 * time.Second
)

var (
	bucketAlerts   = []byte("alerts")
	bucketSilences = []byte("alert_silences")
)

// Alerts raises, keeps and resolves alerts. It observes ingest (Observe)
// and presence (DeviceSilent), keeps every alert and silence in bbolt, and
// tells people through the MQTT topic and the Notifier.
//
// Changes are made in memory under one lock, so two copies of a problem
// arriving together make one alert; they are written to bbolt in batches
// and only then published, so nobody hears of an alert a crash could lose.
type Alerts struct {
	o   AlertOptions
	log *slog.Logger

	mu       sync.Mutex
	alerts   map[string]*Alert // by id
	byKey    map[string]*Alert // the latest alert of each key
	silences map[string]*Silence
	// seq and silenceSeq are the last alert and silence ids given, each
	// kept as its bucket's sequence so that no id is given twice, even
	// after the newest one was deleted.
	seq        uint64
	silenceSeq uint64
	started    time.Time
	dirty      map[string]struct{} // alert ids to write
	pending    []pendingNotice     // to send once written
	offline    map[string]offlineHold
	held       atomic.Int64 // len(offline), read without the lock
	// keys holds the key of every alert kept, read without the lock.
	keys sync.Map
	// keptAt counts the keys of keys by station: a message of a station
	// without any alert kept, whose signals are all quiet, needs no
	// lookup of its signals' keys (see Observe).
	keptMu sync.RWMutex
	keptAt map[string]int

	stMu   sync.Mutex              // guards states; never held with mu
	states map[string]*deviceState // rule windows, by device

	wake    chan struct{}
	flushMu sync.Mutex

	// Stored changes wait in tellQ for the teller, which Run starts, so
	// the next batch is written while this one is told.
	tellMu   sync.Mutex
	tellQ    []pendingNotice
	tellWake chan struct{}
	telling  atomic.Int64 // notices stored but not yet told
	running  atomic.Bool  // the teller runs
	names    sync.Map     // station summaries' names, by station id

	// pubMu orders publishes and the outbox (alert_outbox.go).
	pubMu      sync.Mutex
	kept       atomic.Int64 // messages in the outbox
	pubFailing bool         // the last publish failed; guarded by pubMu

	notices   *prometheus.CounterVec
	published *prometheus.CounterVec
	latency   prometheus.Histogram
	commands  *prometheus.CounterVec
	gauge     *alertGauge
}

// pendingNotice is a change to send once it is stored.
type pendingNotice struct {
	typ   string
	alert Alert
	at    time.Time // the message (or timer) that caused it
}

// offlineHold is a device found offline whose alert waits for the grace
// period or for the rest of its station.
type offlineHold struct {
	station string
	since   time.Time // when it went offline
	due     time.Time // raise no earlier than this
	how     string    // "status" (offline status or will) or "silence"
}

// NewAlerts loads the stored alerts and silences and registers metrics.
func NewAlerts(o AlertOptions) (*Alerts, error) {
	if o.DB == nil || o.Registry == nil || o.Twins == nil {
		return nil, errors.New("alerts need a db, a registry and twins")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Grace, DefaultAlertGrace)
	def(&o.StationWindow, DefaultAlertStationWindow)
	def(&o.FlapWindow, DefaultAlertFlapWindow)
	def(&o.EscalateAfter, DefaultEscalateAfter)
	def(&o.EscalateMax, DefaultEscalateMax)
	def(&o.Retention, DefaultAlertRetention)
	def(&o.Every, DefaultAlertEvery)
	o.Rules.defaults()
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Alerts{o: o, log: o.Logger.With("component", "alerts"),
		alerts: map[string]*Alert{}, byKey: map[string]*Alert{}, silences: map[string]*Silence{},
		keptAt: map[string]int{},
		dirty:  map[string]struct{}{}, offline: map[string]offlineHold{},
		states: map[string]*deviceState{}, wake: make(chan struct{}, 1), started: o.Now(),
		tellWake: make(chan struct{}, 1)}
	err := o.DB.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAlerts)
		if err != nil {
			return err
		}
		e.seq = b.Sequence()
		if err := b.ForEach(func(k, v []byte) error {
			a := new(Alert)
			if err := json.Unmarshal(v, a); err != nil {
				return fmt.Errorf("alert %x: %w", k, err)
			}
			e.alerts[a.ID] = a
			if len(k) == 8 {
				e.seq = max(e.seq, binary.BigEndian.Uint64(k))
			}
			if cur, ok := e.byKey[a.key()]; !ok || alertNewer(a, cur) {
				e.byKey[a.key()] = a
			}
			e.keep(a.key(), a.Station)
			return nil
		}); err != nil {
			return err
		}
		if err := e.loadOutbox(tx); err != nil {
			return err
		}
		sb, err := tx.CreateBucketIfNotExists(bucketSilences)
		if err != nil {
			return err
		}
		e.silenceSeq = sb.Sequence()
		if err := sb.ForEach(func(k, v []byte) error {
			s := new(Silence)
			if err := json.Unmarshal(v, s); err != nil {
				return fmt.Errorf("silence %s: %w", k, err)
			}
			e.silences[s.ID] = s
			if n, err := strconv.ParseUint(strings.TrimPrefix(s.ID, "s"), 10, 64); err == nil {
				e.silenceSeq = max(e.silenceSeq, n)
			}
			return nil
		}); err != nil {
			return err
		}
		// A file written before the buckets kept their sequences numbered
		// alerts and silences from one counter, started again at the
		// highest id of either: ids up to that may have been given to
		// either kind already (and be in notice keys), so neither counter
		// starts below it, and both are kept from now on.
		if b.Sequence() == 0 || sb.Sequence() == 0 {
			shared := max(e.seq, e.silenceSeq)
			e.seq, e.silenceSeq = shared, shared
			if err := b.SetSequence(e.seq); err != nil {
				return err
			}
			return sb.SetSequence(e.silenceSeq)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load alerts: %w", err)
	}
	// A door held open when the controller stopped is held until a report
	// shows it closed, as before the stop: its opening time and whether its
	// terminal reported it held were only in memory.
	for _, a := range e.byKey {
		if a.Rule == RuleDoorHeld && a.Device != "" && a.Open() && a.Active {
			e.states[a.Device] = &deviceState{station: a.Station, doorHeldSaid: true}
		}
	}
	if err := e.metrics(); err != nil {
		return nil, err
	}
	return e, nil
}

// alertNewer orders two alerts of one key: the later one wins.
func alertNewer(a, b *Alert) bool {
	na, _ := strconv.ParseUint(a.ID, 10, 64)
	nb, _ := strconv.ParseUint(b.ID, 10, 64)
	return na > nb
}

func (e *Alerts) metrics() error {
	e.notices = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_alert_notices_total",
		Help: "Alert changes told to people (notifier and MQTT), by notice type.",
	}, []string{"type"})
	e.published = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_alert_publishes_total",
		Help: "Alert changes published on waystation/v1/alerts/{station}, by outcome (ok; kept to " +
			"publish later; error: lost).",
	}, []string{"result"})
	e.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "waystation_alert_seconds",
		Help:    "Time from the message (or timer) that raised or changed an alert to its notice.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 3, 11),
	})
	e.commands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_alert_commands_total",
		Help: "Commands alert rules issued (charger slots switched off), by outcome.",
	}, []string{"result"})
	e.gauge = &alertGauge{e: e, desc: prometheus.NewDesc("waystation_alerts",
		"Alerts kept, by severity and state.", []string{"severity", "state"}, nil)}
	for _, r := range []string{"ok", "error"} {
		e.published.WithLabelValues(r)
		e.commands.WithLabelValues(r)
	}
	if e.o.Registerer == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{e.notices, e.published, e.latency, e.commands, e.gauge} {
		if err := e.o.Registerer.Register(c); err != nil {
			return fmt.Errorf("register alert metrics: %w", err)
		}
	}
	return nil
}

// alertGauge counts alerts by severity and state when scraped.
type alertGauge struct {
	e    *Alerts
	desc *prometheus.Desc
}

func (g *alertGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *alertGauge) Collect(ch chan<- prometheus.Metric) {
	counts := map[[2]string]int{}
	g.e.mu.Lock()
	for _, a := range g.e.alerts {
		counts[[2]string{a.Severity, a.State}]++
	}
	g.e.mu.Unlock()
	for _, sev := range Severities {
		for _, st := range AlertStates {
			ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue,
				float64(counts[[2]string{sev, st}]), sev, st)
		}
	}
}

// Run writes changes and sends their notices as they come, and checks the
// timers every Every, until ctx ends; then it writes and tells what is left.
func (e *Alerts) Run(ctx context.Context) error {
	tctx, stopTeller := context.WithCancel(context.WithoutCancel(ctx))
	tellerDone := make(chan struct{})
	e.running.Store(true)
	go func() {
		defer close(tellerDone)
		e.teller(tctx)
	}()
	defer func() {
		stopTeller()
		<-tellerDone
		e.running.Store(false)
		e.tellQueued()
	}()

	tick := time.NewTicker(e.o.Every)
	defer tick.Stop()
	// Counts and last-seen times are written at least this often.
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return e.Flush()
		case <-e.wake:
			e.sweepOffline(e.o.Now())
		case <-flush.C:
		case <-tick.C:
			e.Sweep()
		}
		if err := e.Flush(); err != nil {
			e.log.Error("alerts not written", "err", err)
		}
	}
}

// teller tells stored changes, in order, until ctx ends, and publishes
// the messages kept in the outbox once the bus takes them.
func (e *Alerts) teller(ctx context.Context) {
	e.retryKept()
	retry := time.NewTicker(keptRetryEvery)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.tellWake:
			e.tellQueued()
		case <-retry.C:
			e.retryKept()
		}
	}
}

// tellQueued tells every queued change, in order.
func (e *Alerts) tellQueued() {
	for {
		e.tellMu.Lock()
		q := e.tellQ
		e.tellQ = nil
		e.tellMu.Unlock()
		if len(q) == 0 {
			return
		}
		for _, p := range q {
			e.tell(p)
			e.telling.Add(-1)
		}
	}
}

// Grace starts the grace period again: devices found offline in the next
// Grace are not paged unless they stay offline. Call it when the broker
// connection comes back after a loss.
func (e *Alerts) Grace() {
	e.mu.Lock()
	e.started = e.o.Now()
	e.mu.Unlock()
}

// Flush writes the changed alerts in one transaction, then sends the
// notices of the changes. On a write failure the changes stay pending.
func (e *Alerts) Flush() error {
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	e.mu.Lock()
	if len(e.dirty) == 0 && len(e.pending) == 0 {
		e.mu.Unlock()
		return nil
	}
	type rec struct {
		key   []byte
		alert Alert
		val   []byte
		del   bool
	}
	// Copies are taken under the lock and encoded after it.
	recs := make([]rec, 0, len(e.dirty))
	for id := range e.dirty {
		a, ok := e.alerts[id]
		if !ok {
			recs = append(recs, rec{key: alertDBKey(id), del: true})
			continue
		}
		recs = append(recs, rec{key: alertDBKey(id), alert: *a})
	}
	dirty := e.dirty
	pending := e.pending
	seq := e.seq
	e.dirty, e.pending = map[string]struct{}{}, nil
	e.mu.Unlock()
	var err error
	for i := range recs {
		if !recs[i].del {
			if recs[i].val, err = json.Marshal(&recs[i].alert); err != nil {
				break
			}
		}
	}

	if err == nil {
		err = e.o.DB.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAlerts)
			if b.Sequence() < seq {
				if err := b.SetSequence(seq); err != nil {
					return err
				}
			}
			for _, r := range recs {
				var err error
				if r.del {
					err = b.Delete(r.key)
				} else {
					err = b.Put(r.key, r.val)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		e.mu.Lock()
		for id := range dirty {
			e.dirty[id] = struct{}{}
		}
		e.pending = append(pending, e.pending...)
		e.mu.Unlock()
		return fmt.Errorf("write alerts: %w", err)
	}
	if len(pending) == 0 {
		return nil
	}
	e.telling.Add(int64(len(pending)))
	e.tellMu.Lock()
	e.tellQ = append(e.tellQ, pending...)
	e.tellMu.Unlock()
	if e.running.Load() {
		select {
		case e.tellWake <- struct{}{}:
		default:
		}
	} else {
		e.tellQueued()
	}
	return nil
}

// alertDBKey is the bbolt key of an alert: its number, big-endian, so keys
// sort by age.
func alertDBKey(id string) []byte {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return []byte(id)
	}
	return binary.BigEndian.AppendUint64(nil, n)
}

// AlertMessage is what is published on waystation/v1/alerts/{station}.
type AlertMessage struct {
	Type  string    `json:"type"`
	Key   string    `json:"key"`
	At    time.Time `json:"at"`
	Alert Alert     `json:"alert"`
}

// tell sends one stored change to the MQTT topic and the notifier.
func (e *Alerts) tell(p pendingNotice) {
	a := p.alert
	key := fmt.Sprintf("alert-%s-%d-%s", a.ID, a.Version, strings.TrimPrefix(p.typ, "alert."))
	now := e.o.Now()
	if e.o.Bus != nil {
		buf, err := json.Marshal(AlertMessage{Type: p.typ, Key: key, At: now, Alert: a})
		if err != nil {
			e.published.WithLabelValues("error").Inc()
			e.log.Error("alert message not encoded", "alert", a.ID, "err", err)
		} else {
			e.publish(schemas.AlertTopic(a.Station), buf, a.ID)
		}
	}
	if e.o.Notifier != nil {
		e.o.Notifier.Notify(Notice{Type: p.typ, Key: key, Station: a.Station, At: now, Data: a})
	}
	e.notices.WithLabelValues(p.typ).Inc()
	if !p.at.IsZero() {
		e.latency.Observe(max(now.Sub(p.at), 0).Seconds())
	}
}

// notify queues a notice of a's change; e.mu must be held. Silenced alerts
// and alerts folded under a station alert notify nobody.
func (e *Alerts) notify(typ string, a *Alert, at time.Time) {
	e.dirty[a.ID] = struct{}{}
	if a.Silenced || (a.Parent != "" && typ != NoticeAlertAcknowledged &&
		typ != NoticeAlertResolved) {
		return
	}
	e.pending = append(e.pending, pendingNotice{typ: typ, alert: *a, at: at})
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// signal is what a rule says about one problem at one message.
type signal struct {
	station  string
	device   string
	rule     string
	subject  string
	severity string
	summary  string
	// format and args make the summary when summary is empty.
	format string
	args   []any
	// active: the problem is there; false: the condition cleared.
	active bool
	// event: each signal is a new occurrence, counted.
	event bool
	// manual: the alert is resolved by a person, not by the condition.
	manual bool
	// parent folds a new device alert under a station alert.
	parent string
}

// text is the signal's summary.
func (s *signal) text() string {
	if s.summary == "" && s.format != "" {
		s.summary = fmt.Sprintf(s.format, s.args...)
	}
	return s.summary
}

// apply raises, bumps or resolves the alert of a signal; at is the time of
// the message that carried it. It returns the alert and whether it is new
// or reopened. e.mu must be held.
func (e *Alerts) apply(s signal, at time.Time) (*Alert, bool) {
	key := alertKey(s.station, s.device, s.rule, s.subject)
	a := e.byKey[key]
	now := e.o.Now()
	if !s.active {
		if a == nil || !a.Open() || a.Manual {
			if a != nil && a.Active {
				a.Active = false
				e.dirty[a.ID] = struct{}{}
			}
			return a, false
		}
		a.Active = false
		a.State, a.ResolvedAt, a.ResolvedBy = AlertResolved, now, ResolvedByCondition
		a.NextEscalation = time.Time{}
		a.Version++
		e.notify(NoticeAlertResolved, a, at)
		return a, false
	}
	switch {
	case a != nil && a.Open():
		changed := false
		if s.event || !a.Active {
			a.Count++
		}
		a.Active = true
		a.LastSeen = now
		if s.severity != a.Severity || s.text() != a.Summary {
			changed = s.severity != a.Severity
			if rank(s.severity) < rank(a.Severity) && a.Severity != SeverityCritical &&
				s.severity == SeverityCritical && a.State == AlertFiring {
				a.NextEscalation = now.Add(e.o.EscalateAfter)
			}
			a.Severity, a.Summary = s.severity, s.text()
		}
		if changed {
			a.Version++
			e.notify(NoticeAlertChanged, a, at)
		} else {
			e.dirty[a.ID] = struct{}{}
		}
		return a, false
	case a != nil && now.Sub(a.ResolvedAt) <= e.o.FlapWindow:
		a.State, a.ResolvedAt, a.ResolvedBy = AlertFiring, time.Time{}, ""
		a.AckedBy, a.AckedAt, a.AckNote = "", time.Time{}, ""
		a.Severity, a.Summary = s.severity, s.text()
		a.Count++
		a.Active = true
		a.LastSeen = now
		a.Escalation = 0
		a.NextEscalation = e.escalationStart(a, now)
		e.silence(a)
		a.Version++
		e.notify(NoticeAlertReopened, a, at)
		return a, true
	}
	e.seq++
	a = &Alert{ID: strconv.FormatUint(e.seq, 10), Station: s.station, Device: s.device,
		Rule: s.rule, Subject: s.subject, Severity: s.severity, State: AlertFiring,
		Summary: s.text(), FirstSeen: now, LastSeen: now, Count: 1, Manual: s.manual,
		Parent: s.parent, Active: true, Version: 1}
	a.NextEscalation = e.escalationStart(a, now)
	e.silence(a)
	e.alerts[a.ID] = a
	e.byKey[key] = a
	e.keep(key, s.station)
	e.notify(NoticeAlertRaised, a, at)
	return a, true
}

// keep records that an alert of key, at station, is kept.
func (e *Alerts) keep(key, station string) {
	if _, loaded := e.keys.LoadOrStore(key, struct{}{}); loaded {
		return
	}
	e.keptMu.Lock()
	e.keptAt[station]++
	e.keptMu.Unlock()
}

// forget records that no alert of key, at station, is kept any more.
func (e *Alerts) forget(key, station string) {
	if _, loaded := e.keys.LoadAndDelete(key); !loaded {
		return
	}
	e.keptMu.Lock()
	if e.keptAt[station]--; e.keptAt[station] <= 0 {
		delete(e.keptAt, station)
	}
	e.keptMu.Unlock()
}

// anyKept tells whether an alert of station is kept.
func (e *Alerts) anyKept(station string) bool {
	e.keptMu.RLock()
	defer e.keptMu.RUnlock()
	return e.keptAt[station] > 0
}

// escalationStart is when a new or reopened alert first escalates.
func (e *Alerts) escalationStart(a *Alert, now time.Time) time.Time {
	if a.Severity != SeverityCritical {
		return time.Time{}
	}
	return now.Add(e.o.EscalateAfter)
}

// rank orders severities, most urgent first; unknown ones last.
func rank(sev string) int {
	if i := slices.Index(Severities, sev); i >= 0 {
		return i
	}
	return len(Severities)
}

// List returns copies of the alerts f selects, newest first.
func (e *Alerts) List(f AlertFilter) []Alert {
	e.mu.Lock()
	out := []Alert{}
	for _, a := range e.alerts {
		if f.match(a) {
			out = append(out, *a)
		}
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b Alert) int {
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		na, _ := strconv.ParseUint(a.ID, 10, 64)
		nb, _ := strconv.ParseUint(b.ID, 10, 64)
		return int(nb) - int(na)
	})
	return out
}

// Get returns a copy of one alert.
func (e *Alerts) Get(id string) (Alert, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.alerts[id]
	if !ok {
		return Alert{}, fmt.Errorf("%w: %q", ErrAlertNotFound, id)
	}
	return *a, nil
}

// Acknowledge marks a firing alert acknowledged by an operator, with a
// note; it stops its escalation. The change is stored and told before it
// returns.
func (e *Alerts) Acknowledge(id, by, note string) (Alert, error) {
	e.mu.Lock()
	a, ok := e.alerts[id]
	switch {
	case !ok:
		e.mu.Unlock()
		return Alert{}, fmt.Errorf("%w: %q", ErrAlertNotFound, id)
	case a.State == AlertResolved:
		e.mu.Unlock()
		return Alert{}, fmt.Errorf("%w: alert %s is already resolved", ErrAlertState, id)
	case a.State == AlertAcknowledged:
		e.mu.Unlock()
		return Alert{}, fmt.Errorf("%w: alert %s was already acknowledged by %s", ErrAlertState,
			id, a.AckedBy)
	}
	a.State, a.AckedBy, a.AckedAt, a.AckNote = AlertAcknowledged, by, e.o.Now(), note
	a.NextEscalation = time.Time{}
	a.Version++
	e.notify(NoticeAlertAcknowledged, a, time.Time{})
	out := *a
	e.mu.Unlock()
	return out, e.Flush()
}

// Resolve marks an open alert resolved by an operator. Alerts whose
// condition still holds come back at the next message that shows it.
func (e *Alerts) Resolve(id, by string) (Alert, error) {
	e.mu.Lock()
	a, ok := e.alerts[id]
	switch {
	case !ok:
		e.mu.Unlock()
		return Alert{}, fmt.Errorf("%w: %q", ErrAlertNotFound, id)
	case a.State == AlertResolved:
		e.mu.Unlock()
		return Alert{}, fmt.Errorf("%w: alert %s is already resolved", ErrAlertState, id)
	}
	a.State, a.ResolvedAt, a.ResolvedBy = AlertResolved, e.o.Now(), by
	a.NextEscalation = time.Time{}
	// A condition still there is a new occurrence when it next shows.
	a.Active = false
	a.Version++
	e.notify(NoticeAlertResolved, a, time.Time{})
	out := *a
	e.mu.Unlock()
	return out, e.Flush()
}

// Sweep runs the timers: held offline devices and station-down folding,
// rules that depend on time passing, silences ending, escalations, and
// the pruning of old resolved alerts.
func (e *Alerts) Sweep() {
	now := e.o.Now()
	e.sweepOffline(now)
	e.sweepRules(now)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sweepSilences(now)
	for _, a := range e.alerts {
		if a.State == AlertFiring && !a.Silenced && a.Parent == "" &&
			!a.NextEscalation.IsZero() && !now.Before(a.NextEscalation) {
			a.Escalation++
			wait := e.o.EscalateAfter << a.Escalation
			if wait > e.o.EscalateMax || wait <= 0 {
				wait = e.o.EscalateMax
			}
			a.NextEscalation = now.Add(wait)
			a.Version++
			e.notify(NoticeAlertEscalated, a, time.Time{})
		}
		if a.State == AlertResolved && now.Sub(a.ResolvedAt) > e.o.Retention {
			delete(e.alerts, a.ID)
			if e.byKey[a.key()] == a {
				delete(e.byKey, a.key())
				e.forget(a.key(), a.Station)
			}
			e.dirty[a.ID] = struct{}{}
		}
	}
}
