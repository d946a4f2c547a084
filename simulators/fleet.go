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
}

// Spread of first connects when FleetOptions.ConnectSpread is zero.
const (
	spreadPerDevice = 10 * time.Millisecond
	maxSpread       = 3 * time.Second
)

// Fleet runs many simulated devices against one broker.
type Fleet struct {
	log     *slog.Logger
	devices []*Device
	byID    map[string]*Device
	running atomic.Bool
	online  atomic.Int64
	allOnce sync.Once
}

// NewFleet checks every spec and builds the devices. It fails, wrapping
// ErrSpec or ErrBroker, on a bad spec, a device id given twice or a broker
// address the devices cannot dial.
func NewFleet(o FleetOptions) (*Fleet, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	spread := o.ConnectSpread
	if spread <= 0 {
		spread = min(maxSpread, spreadPerDevice*time.Duration(len(o.Devices)))
	}
	f := &Fleet{log: o.Logger, byID: make(map[string]*Device, len(o.Devices))}

	// Start delays come from the seed too, so a run is repeatable.
	rng := rand.New(rand.NewPCG(mix(uint64(o.Seed)+2), uint64(len(o.Devices))))
	for i, spec := range o.Devices {
		if _, dup := f.byID[spec.Device]; dup {
			return nil, fmt.Errorf("%w: device id %q given twice", ErrSpec, spec.Device)
		}
		d := NewDevice(spec, DeviceOptions{
			Broker:     o.Broker,
			Seed:       o.Seed,
			Now:        o.Now,
			Clock:      o.Clock,
			Location:   o.Location,
			Logger:     o.Logger,
			StartDelay: time.Duration(rng.Int64N(int64(spread) + 1)),
		})
		if d.err != nil {
			return nil, fmt.Errorf("device %d: %w", i, d.err)
		}
		d.onOnline = f.track
		f.devices = append(f.devices, d)
		f.byID[spec.Device] = d
	}
	return f, nil
}

// Run connects every device and runs them until ctx ends, then disconnects
// them all cleanly. It returns nil once every device goroutine has stopped,
// or ErrRunning if the fleet is already running.
func (f *Fleet) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return fmt.Errorf("fleet: %w", ErrRunning)
	}
	defer f.running.Store(false)

	start := time.Now()
	f.log.Info("simulated devices starting", "devices", len(f.devices))

	var wg sync.WaitGroup
	for _, d := range f.devices {
		wg.Go(func() {
			if err := d.Run(ctx); err != nil {
				f.log.Error("simulated device stopped", "device", d.ID(), "err", err)
			}
		})
	}
	wg.Wait()
	f.log.Info("simulated devices stopped", "devices", len(f.devices),
		"ran", time.Since(start).Round(time.Second))
	return nil
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
