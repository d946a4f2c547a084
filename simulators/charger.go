package simulators

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/waystation/waystation/schemas"
)

// Charger cabinet states and figures.
const (
	slotEmpty    = "empty"
	slotCharging = "charging"
	slotFull     = "full"
	slotFault    = "fault"
	slotOff      = "off"

	codeSlotOverheat = "slot_overheat"

	minSlots          = 6
	maxSlots          = 12
	bulkRatePctPerH   = 28.0 // constant-current phase, up to about 80 %
	taperFromPct      = 80.0
	fullAtPct         = 99.5
	overheatC         = 62.0 // the cabinet cuts a slot at about 60 °C
	resumeBelowC      = 45.0 // an overheated slot may be switched on again below this
	chargeRiseC       = 9.0  // a battery at full current runs this much above the cabinet
	slotTau           = 10 * time.Minute
	cooldownTau       = 20 * time.Minute
	cabinetGainC      = 3.0 // electronics and sun warm the cabinet above the air
	chargeStep        = time.Minute
	maxChargeSteps    = 24 * 60
	arrivalsDayPerH   = 0.3  // a battery brought to an empty slot, by day
	arrivalsNightPerH = 0.15 // and by night, when riders still work
	pickupFullPerH    = 0.5
	pickupEarlyPerH   = 0.08
)

// errSlotHot is answered when an overheated slot is switched on too soon.
var errSlotHot = errors.New("slot too hot")

// slot is one bay: whether a battery sits in it, its charge and temperature,
// and whether the bay is switched off or cut by a fault.
type slot struct {
	battery bool
	socPct  float64
	tempC   float64
	off     bool
	fault   bool
}

// state is the slot's state on the wire.
func (s *slot) state() string {
	switch {
	case s.fault:
		return slotFault
	case s.off:
		return slotOff
	case !s.battery:
		return slotEmpty
	case s.socPct >= fullAtPct:
		return slotFull
	}
	return slotCharging
}

// chargerModel is a battery cabinet: batteries arrive in empty slots, charge
// along a constant-current then tapering curve, and are picked up again.
type chargerModel struct {
	env *env

	slots    []slot
	cabinetC float64
}

// newCharger returns a cabinet of 6-12 slots, some empty, the rest part way
// through a charge or full.
func newCharger(e *env, now time.Time) *chargerModel {
	m := &chargerModel{env: e, slots: make([]slot, minSlots+e.rng.IntN(maxSlots-minSlots+1))}
	m.cabinetC = e.climate.outdoorC(now) + cabinetGainC
	for i := range m.slots {
		s := &m.slots[i]
		switch r := e.rng.Float64(); {
		case r < 0.35:
		case r < 0.5:
			s.battery, s.socPct = true, 100
		default:
			s.battery, s.socPct = true, e.between(10, 97)
		}
		s.tempC = m.targetTemp(s)
	}
	return m
}

func (m *chargerModel) step(now time.Time, dt time.Duration) []schemas.Event {
	hour := now.In(m.env.climate.loc).Hour()
	arrivals := arrivalsDayPerH
	if hour < 6 || hour >= 22 {
		arrivals = arrivalsNightPerH
	}

	charging := 0
	for i := range m.slots {
		s := &m.slots[i]
		m.charge(s, dt)
		switch st := s.state(); {
		case st == slotEmpty && m.env.chance(arrivals, dt):
			s.battery, s.socPct = true, m.env.between(5, 40)
		case st == slotFull && m.env.chance(pickupFullPerH, dt),
			st == slotCharging && m.env.chance(pickupEarlyPerH, dt):
			s.battery, s.socPct = false, 0
		}
		if s.state() == slotCharging {
			charging++
		}
	}

	air := m.env.climate.outdoorC(now)
	m.cabinetC = clamp(relax(m.cabinetC, air+cabinetGainC+0.3*float64(charging), dt, slotTau)+
		m.env.noise(0.05), -20, 70)
	for i := range m.slots {
		s := &m.slots[i]
		tau := slotTau
		if s.fault {
			tau = cooldownTau
		}
		s.tempC = relax(s.tempC, m.targetTemp(s), dt, tau) + m.env.noise(0.05)
	}
	return nil
}

// charge adds the charge a slot takes in dt, in steps of a minute so the
// curve bends where it should even when dt is long.
func (m *chargerModel) charge(s *slot, dt time.Duration) {
	if s.state() != slotCharging {
		return
	}
	for n := 0; dt > 0 && n < maxChargeSteps; n++ {
		h := min(dt, chargeStep).Hours()
		dt -= chargeStep
		if s.socPct < taperFromPct {
			s.socPct += bulkRatePctPerH * h
			continue
		}
		// Constant voltage: the current, and so the rate, falls with the gap to full.
		rate := bulkRatePctPerH / (100 - taperFromPct)
		s.socPct = 100 - (100-s.socPct)*math.Exp(-rate*h)
		if s.socPct >= fullAtPct {
			s.socPct = 100
			return
		}
	}
}

// current is the charging current of a slot as a share of full current.
func (m *chargerModel) current(s *slot) float64 {
	if s.state() != slotCharging {
		return 0
	}
	if s.socPct < taperFromPct {
		return 1
	}
	return (100 - s.socPct) / (100 - taperFromPct)
}

// targetTemp is where a slot's temperature settles: a little above the
// cabinet while charging, at the cabinet otherwise.
func (m *chargerModel) targetTemp(s *slot) float64 {
	t := m.cabinetC + chargeRiseC*m.current(s)
	if s.battery && s.state() == slotFull {
		t += 1
	}
	return t
}

func (m *chargerModel) encode(meta schemas.Meta) ([]byte, error) {
	s := schemas.ChargerState{
		Slots:    make([]schemas.Slot, len(m.slots)),
		CabinetC: ptr(round1(m.cabinetC)),
		Mains:    true,
	}
	for i := range m.slots {
		sl := &m.slots[i]
		out := schemas.Slot{Slot: i + 1, State: sl.state()}
		if sl.battery || sl.fault {
			out.TempC = ptr(round1(sl.tempC))
		}
		if sl.battery {
			out.SocPct = ptr(round1(sl.socPct))
		}
		s.Slots[i] = out
	}
	return json.Marshal(struct {
		schemas.Meta
		*schemas.ChargerState
	}{meta, &s})
}

// command applies charger.slot: slot (1-based) and on (boolean). Switching
// an overheated slot back on clears its fault once it has cooled below 45 °C.
func (m *chargerModel) command(now time.Time, c schemas.Command) ([]schemas.Event, error) {
	if c.Name != schemas.CmdChargerSlot {
		return nil, fmt.Errorf("%w: %s is not a charger command", ErrKind, c.Name)
	}
	n, ok, err := argInt(c.Args, "slot", 1, len(m.slots))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: slot is required", ErrArgs)
	}
	on, ok, err := argBool(c.Args, "on")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: on is required", ErrArgs)
	}

	s := &m.slots[n-1]
	if !on {
		s.off = true
		return nil, nil
	}
	if s.fault && s.tempC > resumeBelowC {
		return nil, fmt.Errorf("%w: slot %d at %.0f °C", errSlotHot, n, s.tempC)
	}
	s.off = false
	if !s.fault {
		return nil, nil
	}
	s.fault = false
	e := event(now, schemas.EventFaultCleared)
	e.Code, e.Slot = codeSlotOverheat, n
	return []schemas.Event{e}, nil
}

// overheat cuts slot n (1-based) as the cabinet does when it reaches about
// 60 °C.
func (m *chargerModel) overheat(now time.Time, n int) ([]schemas.Event, error) {
	if n < 1 || n > len(m.slots) {
		return nil, fmt.Errorf("%w: slot %d of %d", ErrArgs, n, len(m.slots))
	}
	s := &m.slots[n-1]
	if s.fault {
		return nil, nil
	}
	s.fault = true
	s.tempC = overheatC + m.env.between(0, 4)
	e := event(now, schemas.EventFaultRaised)
	e.Code, e.Slot = codeSlotOverheat, n
	return []schemas.Event{e}, nil
}

// clear lets every faulty slot cool at once and switches it back on.
func (m *chargerModel) clear(now time.Time) []schemas.Event {
	var out []schemas.Event
	for i := range m.slots {
		s := &m.slots[i]
		if !s.fault {
			continue
		}
		s.fault = false
		s.tempC = m.targetTemp(s)
		e := event(now, schemas.EventFaultCleared)
		e.Code, e.Slot = codeSlotOverheat, i+1
		out = append(out, e)
	}
	return out
}
