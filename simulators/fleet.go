package simulators

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// FleetOptions configure a fleet. Only Devices is needed; the rest default
// as DeviceOptions do.
type FleetOptions struct {
	Broker  string // e.g. tcp://127.0.0.1:1883 or ws://host:port/mqtt
	Devices []DeviceSpec
	Seed    int64 // same seed, same simulated values
	// Clock is the simulated time of every device; nil means a clock at
	// wall speed reading Now.
	Clock    *Clock
	Now      func() time.Time // the devices' clock when Clock is nil; default time.Now
	Location *time.Location   // for time-of-day behaviour; default Asia/Shanghai
	Logger   *slog.Logger

	// ConnectSpread spreads the devices' first connects over this window,
	// each at a random point in it; default 10 ms per device, at most 3 s.
	ConnectSpread time.Duration

	// Scenario, when set, is played on the fleet while it runs, its times
	// taken from the clock's reading when the fleet is built. Its weather
	// offset adds to WeatherOffsetC.
	Scenario *Scenario
	// ScenarioStart, when set, is the instant the scenario's times are
	// read against instead: a run resumed on stored data starts later than
	// its scenario did. Its steps before the fleet's start were played by
	// the earlier run and are skipped.
	ScenarioStart time.Time
	// OnScenario hears of every scenario action carried out on a device,
	// or failed; it must not block.
	OnScenario func(ScenarioReport)

	WeatherOffsetC float64       // added to the outdoor temperature everywhere
	AccessTimeout  time.Duration // as DeviceOptions.AccessTimeout

	// Tokens are the credential tokens the platform issued for each
	// station's workers, by station id; see DeviceOptions.Tokens.
	Tokens map[string][]string
}

// ScenarioReport is one scenario action on one device.
type ScenarioReport struct {
	At     time.Time // the simulated time the scenario gave
	Line   int       // of the event in the scenario file
	Action string
	Device string
	Err    error // nil when it was carried out
}

// Spread of first connects when FleetOptions.ConnectSpread is zero.
const (
	spreadPerDevice = 10 * time.Millisecond
	maxSpread       = 3 * time.Second
)

// Fleet runs many simulated devices against one broker.
type Fleet struct {
	log        *slog.Logger
	clock      *Clock
	born       time.Time // the models' start; scenario offsets count from it
	devices    []*Device
	byID       map[string]*Device
	steps      []scenarioStep
	onScenario func(ScenarioReport)
	running    atomic.Bool
	online     atomic.Int64
	allOnce    sync.Once
}

// NewFleet checks every spec and builds the devices. It fails, wrapping
// ErrSpec or ErrBroker, on a bad spec, a device id given twice or a broker
// address the devices cannot dial, and with a *ScenarioError when the
// scenario names devices or stations the fleet lacks.
func NewFleet(o FleetOptions) (*Fleet, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Clock == nil {
		o.Clock = clockFrom(o.Now)
	}
	if o.Location == nil {
		o.Location = shanghai()
	}
	spread := o.ConnectSpread
	if spread <= 0 {
		spread = min(maxSpread, spreadPerDevice*time.Duration(len(o.Devices)))
	}
	weather := o.WeatherOffsetC
	if o.Scenario != nil {
		weather += o.Scenario.WeatherOffsetC
	}
	f := &Fleet{log: o.Logger, clock: o.Clock, byID: make(map[string]*Device, len(o.Devices)),
		onScenario: o.OnScenario}

	// One start for every model, and start delays from the seed, so a run
	// is repeatable.
	born := o.Clock.Now()
	f.born = born
	rng := rand.New(rand.NewPCG(mix(uint64(o.Seed)+2), uint64(len(o.Devices))))
	for i, spec := range o.Devices {
		if _, dup := f.byID[spec.Device]; dup {
			return nil, fmt.Errorf("%w: device id %q given twice", ErrSpec, spec.Device)
		}
		d := newDevice(spec, DeviceOptions{
			Broker:         o.Broker,
			Seed:           o.Seed,
			Clock:          o.Clock,
			Location:       o.Location,
			Logger:         o.Logger,
			StartDelay:     time.Duration(rng.Int64N(int64(spread) + 1)),
			WeatherOffsetC: weather,
			AccessTimeout:  o.AccessTimeout,
			Tokens:         o.Tokens[spec.Station],
		}, born)
		if d.err != nil {
			return nil, fmt.Errorf("device %d: %w", i, d.err)
		}
		d.onOnline = f.track
		f.devices = append(f.devices, d)
		f.byID[spec.Device] = d
	}
	if o.Scenario != nil {
		scStart := o.ScenarioStart
		if scStart.IsZero() || scStart.After(born) {
			scStart = born
		}
		steps, err := o.Scenario.plan(scStart, born, o.Location, f.devices)
		if err != nil {
			return nil, err
		}
		f.steps = steps
	}
	return f, nil
}

// Run connects every device and runs them, and the scenario if there is
// one, until ctx ends; then it disconnects them all cleanly. It returns nil
// once every device goroutine has stopped, or ErrRunning if the fleet is
// already running.
func (f *Fleet) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return fmt.Errorf("fleet: %w", ErrRunning)
	}
	defer f.running.Store(false)

	start := time.Now()
	f.log.Info("simulated devices starting", "devices", len(f.devices),
		"speed", f.clock.Speed(), "time", f.clock.Now().Format(time.DateTime))

	var wg sync.WaitGroup
	for _, d := range f.devices {
		wg.Go(func() {
			if err := d.Run(ctx); err != nil {
				f.log.Error("simulated device stopped", "device", d.ID(), "err", err)
			}
		})
	}
	if len(f.steps) > 0 {
		wg.Go(func() { f.play(ctx) })
	}
	wg.Wait()
	f.log.Info("simulated devices stopped", "devices", len(f.devices),
		"ran", time.Since(start).Round(time.Second))
	return nil
}

// play carries out the scenario's steps at their times.
func (f *Fleet) play(ctx context.Context) {
	for _, st := range f.steps {
		if !f.clock.SleepUntil(ctx, st.at) {
			return
		}
		for _, d := range st.devices {
			err := st.apply(d)
			args := []any{"action", st.action, "device", d.ID(), "line", st.event.Line,
				"at", st.at.Format(time.DateTime)}
			if err != nil {
				f.log.Warn("scenario action failed", append(args, "err", err)...)
			} else {
				f.log.Info("scenario", args...)
			}
			if f.onScenario != nil {
				f.onScenario(ScenarioReport{At: st.at, Line: st.event.Line, Action: st.action,
					Device: d.ID(), Err: err})
			}
		}
	}
	f.log.Info("scenario finished", "steps", len(f.steps))
}

// track counts devices online and says once when all of them are.
func (f *Fleet) track(online bool) {
	if !online {
		f.online.Add(-1)
		return
	}
	if int(f.online.Add(1)) == len(f.devices) {
		f.allOnce.Do(func() { f.log.Info("all simulated devices online", "devices", len(f.devices)) })
	}
}

// Connected returns how many devices are connected now.
func (f *Fleet) Connected() int { return int(f.online.Load()) }

// Device returns the device with id, or nil: for tests and scenarios that
// inject faults.
func (f *Fleet) Device(id string) *Device { return f.byID[id] }

// Devices returns every device of the fleet, in the order of the specs.
func (f *Fleet) Devices() []*Device { return append([]*Device(nil), f.devices...) }

// Clock returns the fleet's clock.
func (f *Fleet) Clock() *Clock { return f.clock }

// Start returns the simulated time the fleet was built at: its devices'
// models start there, and a scenario's offsets count from it.
func (f *Fleet) Start() time.Time { return f.born }

// FleetStats sums the devices' counts.
type FleetStats struct {
	Devices   int
	Connected int    // connected now
	Failing   int    // devices whose last connection attempt failed
	Attempts  uint64 // connection attempts
	Connects  uint64
	Failures  uint64 // failed connection attempts
	Drops     uint64
	Sent      uint64 // messages acknowledged by the broker
}

// Stats returns the fleet's counts.
func (f *Fleet) Stats() FleetStats {
	s := FleetStats{Devices: len(f.devices), Connected: f.Connected()}
	for _, d := range f.devices {
		ds := d.Stats()
		s.Attempts += ds.Attempts
		s.Connects += ds.Connects
		s.Failures += ds.Failures
		s.Drops += ds.Drops
		s.Sent += ds.Sent
		if ds.Failing {
			s.Failing++
		}
	}
	return s
}
