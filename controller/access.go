package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// The reasons of an access decision: the reason field of access/res and
// the reason label of waystation_access_decisions_total. They are checked
// in this order; the first that applies is the answer.
const (
	ReasonThrottled = "throttled"          // the terminal asks faster than its rate
	ReasonUnknown   = "unknown"            // no credential has this token
	ReasonRevoked   = "revoked"            // the credential was revoked
	ReasonOtherOrg  = "other_org"          // the station admits only its own organisation
	ReasonMethod    = "method_not_allowed" // the station or the credential refuses the method
	ReasonLockdown  = "lockdown"           // the terminal reports lockdown mode
	ReasonClosed    = "closed"             // outside the station's opening hours
	ReasonGranted   = "granted"
)

// AccessReasons lists every reason, in the order they are checked.
var AccessReasons = []string{ReasonThrottled, ReasonUnknown, ReasonRevoked, ReasonOtherOrg,
	ReasonMethod, ReasonLockdown, ReasonClosed, ReasonGranted}

// Defaults of AccessOptions.
const (
	DefaultUnlockS        = 5
	DefaultAccessRatePerS = 2
	DefaultAccessBurst    = 10
)

// VisitRecorder is told of every granted entry.
type VisitRecorder interface {
	Visit(station, method string, at time.Time)
}

// AccessOptions configures Access. Bus, Registry, Twins, Credentials and
// Rules are required.
type AccessOptions struct {
	Bus         Bus
	Registry    *devices.Registry
	Twins       *devices.Twins
	Credentials *Credentials
	Rules       *AccessRules
	// Visits, when set, counts every granted entry.
	Visits VisitRecorder
	// Location is the time zone of stations' opening hours; default
	// time.Local.
	Location *time.Location
	// UnlockS is how long a granted door stays unlocked, seconds; default
	// DefaultUnlockS.
	UnlockS int
	// RatePerS and Burst are each terminal's token bucket: it may ask
	// Burst times at once and RatePerS times a second after that; beyond,
	// its requests are answered throttled. Defaults DefaultAccessRatePerS
	// and DefaultAccessBurst.
	RatePerS float64
	Burst    int
	Now      func() time.Time
	Logger   *slog.Logger
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Decision is the answer to an access request.
type Decision struct {
	Granted bool
	Reason  string // one of AccessReasons
	UnlockS int    // seconds to keep the door unlocked, when granted
}

// Access answers door terminals' access requests. Everything a decision
// needs is in memory: credentials, station rules, the terminal's last
// reported mode and its token bucket. Its Observe runs on the ingest
// workers and never waits on the disk.
type Access struct {
	o   AccessOptions
	log *slog.Logger

	decisions     *prometheus.CounterVec
	latency       prometheus.Histogram
	publishErrors prometheus.Counter

	mu      sync.Mutex // guards modes, buckets and recent
	modes   map[string]string
	buckets map[string]*tokenBucket
	recent  map[string]*recentAnswers // by terminal
}

// recentAnswers remembers a terminal's last answers by request id, so a
// request sent again (a QoS 1 resend, a retry after a lost answer) gets the
// same answer without counting a second decision or visit.
type recentAnswers struct {
	ids  [recentAnswersN]string
	next int
	by   map[string]Decision
}

// recentAnswersN is how many answers per terminal are remembered.
const recentAnswersN = 32

// lookup returns the answer already given to request id.
func (r *recentAnswers) lookup(id string) (Decision, bool) {
	d, ok := r.by[id]
	return d, ok
}

// remember records the answer to request id, forgetting the oldest.
func (r *recentAnswers) remember(id string, d Decision) {
	if old := r.ids[r.next]; old != "" {
		delete(r.by, old)
	}
	r.ids[r.next] = id
	r.next = (r.next + 1) % recentAnswersN
	r.by[id] = d
}

// NewAccess builds Access, reads the terminals' modes from their twins and
// registers the metrics.
func NewAccess(o AccessOptions) (*Access, error) {
	if o.Bus == nil || o.Registry == nil || o.Twins == nil || o.Credentials == nil ||
		o.Rules == nil {
		return nil, errors.New("access needs a bus, a registry, twins, credentials and rules")
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.UnlockS <= 0 {
		o.UnlockS = DefaultUnlockS
	}
	o.UnlockS = min(o.UnlockS, schemas.MaxUnlockS)
	if o.RatePerS <= 0 {
		o.RatePerS = DefaultAccessRatePerS
	}
	if o.Burst <= 0 {
		o.Burst = DefaultAccessBurst
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Access{o: o, log: o.Logger.With("component", "access"), modes: map[string]string{},
		buckets: map[string]*tokenBucket{}, recent: map[string]*recentAnswers{}}

	for _, tw := range o.Twins.All() {
		var st schemas.LockState
		if tw.Kind == schemas.KindLock && len(tw.State) > 0 && json.Unmarshal(tw.State, &st) == nil {
			a.modes[tw.Device] = st.Mode
		}
	}

	a.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_access_decisions_total",
		Help: "Access requests answered, by reason (granted, or why not).",
	}, []string{"reason"})
	for _, r := range AccessReasons {
		a.decisions.WithLabelValues(r)
	}
	a.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "waystation_access_decision_seconds",
		Help:    "Time from an access request's arrival to its answer being published.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14), // 50µs to about 400ms
	})
	a.publishErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "waystation_access_publish_errors_total",
		Help: "Access answers that could not be published.",
	})
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{a.decisions, a.latency, a.publishErrors} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register access metrics: %w", err)
			}
		}
	}
	return a, nil
}

// Observe takes the ingest's observations: it answers access requests and
// follows the terminals' modes. Give it to Ingest.Observe.
func (a *Access) Observe(obs Observation) {
	switch {
	case obs.Access != nil:
		a.answer(obs.Device, *obs.Access, obs.At)
	case obs.Telem != nil && obs.Telem.Lock != nil:
		a.mu.Lock()
		a.modes[obs.Device.ID] = obs.Telem.Lock.Mode
		a.mu.Unlock()
	}
}

// answer decides, counts the decision (and the visit) and publishes the
// answer: a terminal that has its answer finds it counted.
func (a *Access) answer(d devices.Device, req schemas.AccessRequest, at time.Time) {
	a.mu.Lock()
	recent, ok := a.recent[d.ID]
	if !ok {
		recent = &recentAnswers{by: map[string]Decision{}}
		a.recent[d.ID] = recent
	}
	dec, repeat := recent.lookup(req.ID)
	a.mu.Unlock()

	if !repeat {
		dec = a.Decide(d, req, at)
		a.mu.Lock()
		recent.remember(req.ID, dec)
		a.mu.Unlock()
		a.decisions.WithLabelValues(dec.Reason).Inc()
		if dec.Granted && a.o.Visits != nil {
			a.o.Visits.Visit(d.Station, req.Method, at)
		}
	}

	res := schemas.AccessResponse{Meta: schemas.Meta{TS: a.o.Now().UnixMilli()}, ID: req.ID,
		Granted: dec.Granted, Reason: dec.Reason, UnlockS: dec.UnlockS}
	buf, err := json.Marshal(res)
	if err == nil {
		topic := schemas.DeviceTopic(d.Station, d.ID, schemas.ChannelAccessRes)
		err = a.o.Bus.Publish(topic, 1, false, buf)
	}
	if err != nil {
		a.publishErrors.Inc()
		a.log.Debug("access answer not published", "device", d.ID, "station", d.Station,
			"err", err)
	}
	a.latency.Observe(a.o.Now().Sub(at).Seconds())
	a.log.Debug("access decided", "device", d.ID, "station", d.Station, "request", req.ID,
		"method", req.Method, "reason", dec.Reason)
}

// Decide answers an access request that terminal d received at time at.
// The reasons are checked in the order of AccessReasons.
func (a *Access) Decide(d devices.Device, req schemas.AccessRequest, at time.Time) Decision {
	if !a.take(d.ID, at) {
		return Decision{Reason: ReasonThrottled}
	}
	cred, ok := a.o.Credentials.Lookup(req.Token)
	if !ok {
		return Decision{Reason: ReasonUnknown}
	}
	if !cred.Active() {
		return Decision{Reason: ReasonRevoked}
	}
	st, err := a.o.Registry.Station(d.Station)
	if err != nil {
		// A registered device's station exists; refuse rather than guess.
		return Decision{Reason: ReasonUnknown}
	}
	rules := a.o.Rules.Get(st.ID, st.Org)
	if !rules.admits(cred.Org, st.Org) {
		return Decision{Reason: ReasonOtherOrg}
	}
	if !slices.Contains(rules.Methods, req.Method) || !slices.Contains(cred.Methods, req.Method) {
		return Decision{Reason: ReasonMethod}
	}
	a.mu.Lock()
	mode := a.modes[d.ID]
	a.mu.Unlock()
	if mode == schemas.LockLockdown {
		return Decision{Reason: ReasonLockdown}
	}
	if !openAt(st.Hours, at, a.o.Location) {
		return Decision{Reason: ReasonClosed}
	}
	return Decision{Granted: true, Reason: ReasonGranted, UnlockS: a.o.UnlockS}
}

// take spends one token of the terminal's bucket, refilled since its last
// request; it reports false when the bucket is empty.
func (a *Access) take(device string, at time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.buckets[device]
	if !ok {
		b = &tokenBucket{tokens: float64(a.o.Burst), last: at}
		a.buckets[device] = b
	}
	if dt := at.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(float64(a.o.Burst), b.tokens+dt*a.o.RatePerS)
		b.last = at
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// tokenBucket is one terminal's allowance of requests.
type tokenBucket struct {
	tokens float64
	last   time.Time
}
