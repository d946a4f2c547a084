package controller

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// DefaultIntervals are the reporting intervals assumed for a kind when
// neither the device's status (interval_s) nor its registration gives one.
var DefaultIntervals = map[schemas.Kind]time.Duration{
	schemas.KindAC:      30 * time.Second,
	schemas.KindLock:    60 * time.Second,
	schemas.KindCharger: 30 * time.Second,
	schemas.KindAED:     5 * time.Minute,
}

// PresenceOptions configures Presence. Twins and Registry are required.
type PresenceOptions struct {
	Twins    *devices.Twins
	Registry *devices.Registry
	// Missed is how many reporting intervals of silence make a device
	// offline. Default 3.
	Missed int
	// Every is how often devices are checked. Default 10s.
	Every      time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Presence marks offline the devices that have gone silent: a device whose
// TCP connection hangs on, or whose broker lost its will, still stops
// reporting.
//
// Silence is counted from the later of the device's last message and the
// moment Presence started, so a restart of the controller gives every
// device its full allowance to report again before anyone calls it
// offline.
type Presence struct {
	o        PresenceOptions
	log      *slog.Logger
	started  time.Time
	silent   prometheus.Counter
	onSilent []func(devices.Twin, time.Time)
}

// OnSilent adds a function told of every device Sweep marks offline, with
// its twin as it was and the time. Call before Run.
func (p *Presence) OnSilent(f func(devices.Twin, time.Time)) {
	p.onSilent = append(p.onSilent, f)
}

// NewPresence builds a Presence and registers its metric.
func NewPresence(o PresenceOptions) (*Presence, error) {
	if o.Twins == nil || o.Registry == nil {
		return nil, errors.New("presence needs twins and a registry")
	}
	if o.Missed <= 0 {
		o.Missed = 3
	}
	if o.Every <= 0 {
		o.Every = 10 * time.Second
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
	p := &Presence{o: o, log: o.Logger.With("component", "presence"), started: o.Now()}
	p.silent = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "waystation_devices_silent_total",
		Help: "Devices marked offline because they stopped reporting.",
	})
	if err := o.Registerer.Register(p.silent); err != nil {
		return nil, err
	}
	return p, nil
}

// Run checks every interval until ctx ends.
func (p *Presence) Run(ctx context.Context) error {
	tick := time.NewTicker(p.o.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			p.Sweep()
		}
	}
}

// Sweep marks offline every online device silent for longer than its
// allowance, and returns how many it marked.
func (p *Presence) Sweep() int {
	now := p.o.Now()
	n := 0
	for _, tw := range p.o.Twins.All() {
		if !tw.Online {
			continue
		}
		allow := time.Duration(p.o.Missed) * p.interval(tw)
		since := tw.LastSeen
		if since.Before(p.started) {
			since = p.started
		}
		if now.Sub(since) <= allow {
			continue
		}
		if p.o.Twins.MarkOffline(tw.Device, now) {
			n++
			p.silent.Inc()
			for _, f := range p.onSilent {
				f(tw, now)
			}
			p.log.Info("device silent, marked offline", "device", tw.Device, "station", tw.Station,
				"last_seen", tw.LastSeen, "allowance", allow)
		}
	}
	return n
}

// interval is the reporting interval a device keeps.
func (p *Presence) interval(tw devices.Twin) time.Duration {
	if tw.IntervalS > 0 {
		return time.Duration(tw.IntervalS) * time.Second
	}
	if d, err := p.o.Registry.Device(tw.Device); err == nil && d.IntervalS > 0 {
		return time.Duration(d.IntervalS) * time.Second
	}
	if d, ok := DefaultIntervals[tw.Kind]; ok {
		return d
	}
	return time.Minute
}
