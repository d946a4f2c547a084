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
	codeRunaway      = "thermal_runaway"

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

	deratingFromC  = 45.0 // the battery's BMS slows charging above this
	deratingSpanC  = 10.0 // and is down to its floor this much higher
	deratingFloor  = 0.2
	coldChargeC    = 10.0 // and below this, halves it
	noChargeBelowC = 0.0  // and below freezing refuses to charge lithium cells
	runawayTau     = 5 * time.Minute
	runawayStartC  = 8.0   // the cell's first self-heating above the cabinet, °C
	runawayMaxC    = 149.0 // the bay sensor's top of range
	smokeFromC     = 90.0  // a runaway cell vents smoke about here
	cabinetFollowW = 0.03  // the cabinet warms toward a burning bay this much per bay-degree
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
	runaway bool   // the cell heats itself, and nothing the cabinet does stops it
	code    string // the fault code raised when the bay was cut
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
	mains    bool
	smoke    bool
}

// newCharger returns a cabinet of 6-12 slots, some empty, the rest part way
// through a charge or full.
func newCharger(e *env, now time.Time) *chargerModel {
	m := &chargerModel{env: e, mains: true,
		slots: make([]slot, minSlots+e.rng.IntN(maxSlots-minSlots+1))}
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
		if m.current(s) > 0 {
			charging++
		}
	}

	var out []schemas.Event
	air := m.env.climate.outdoorC(now)
	burning := 0.0
	for i := range m.slots {
		if s := &m.slots[i]; s.runaway {
			burning += s.tempC - m.cabinetC
		}
	}
	target := air + cabinetGainC + 0.3*float64(charging) + cabinetFollowW*burning
	m.cabinetC = clamp(relax(m.cabinetC, target, dt, slotTau)+m.env.noise(0.05), -20, 95)
	for i := range m.slots {
		s := &m.slots[i]
		if s.runaway {
			// Self-heating: the hotter the cell, the faster it heats.
			rise := (s.tempC - m.cabinetC + runawayStartC) * (math.Exp(dt.Seconds()/
				runawayTau.Seconds()) - 1)
			s.tempC = math.Min(runawayMaxC, s.tempC+rise)
		} else {
			tau := slotTau
			if s.fault {
				tau = cooldownTau
			}
			s.tempC = relax(s.tempC, m.targetTemp(s), dt, tau) + m.env.noise(0.05)
		}

		// The cabinet cuts a bay at about 60 °C, whatever made it hot.
		if !s.fault && s.tempC >= overheatC-2 {
			out = append(out, m.cut(now, i)...)
		}
	}
	if !m.smoke && m.hottestC() >= smokeFromC {
		m.smoke = true
		out = append(out, event(now, schemas.EventSmoke))
	}
	return out
}

// hottestC is the temperature of the hottest bay.
func (m *chargerModel) hottestC() float64 {
	t := math.Inf(-1)
	for i := range m.slots {
		t = math.Max(t, m.slots[i].tempC)
	}
	return t
}

// cut switches slot i (0-based) off for heat and reports it.
func (m *chargerModel) cut(now time.Time, i int) []schemas.Event {
	s := &m.slots[i]
	s.fault, s.code = true, codeSlotOverheat
	if s.runaway {
		s.code = codeRunaway
	}
	e := event(now, schemas.EventFaultRaised)
	e.Code, e.Slot = s.code, i+1
	return []schemas.Event{e}
}

// charge adds the charge a slot takes in dt, in steps of a minute so the
// curve bends where it should even when dt is long.
func (m *chargerModel) charge(s *slot, dt time.Duration) {
	if s.state() != slotCharging || !m.mains {
		return
	}
	derate := m.derating(s)
	for n := 0; dt > 0 && n < maxChargeSteps; n++ {
		h := min(dt, chargeStep).Hours() * derate
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

// derating is the share of full charging current the battery's BMS allows
// at its temperature: less when hot, less when cold, none below freezing.
func (m *chargerModel) derating(s *slot) float64 {
	switch t := s.tempC; {
	case t > deratingFromC:
		return clamp(1-(1-deratingFloor)*(t-deratingFromC)/deratingSpanC, deratingFloor, 1)
	case t < noChargeBelowC:
		return 0
	case t < coldChargeC:
		return 0.5
	}
	return 1
}

// current is the charging current of a slot as a share of full current.
func (m *chargerModel) current(s *slot) float64 {
	if s.state() != slotCharging || !m.mains {
		return 0
	}
	share := 1.0
	if s.socPct >= taperFromPct {
		share = (100 - s.socPct) / (100 - taperFromPct)
	}
	return share * m.derating(s)
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
		Smoke:    m.smoke,
		Mains:    m.mains,
	}
	for i := range m.slots {
		sl := &m.slots[i]
		out := schemas.Slot{Slot: i + 1, State: sl.state()}
		if !m.mains && out.State == slotCharging {
			out.State = slotOff // no power to the bay
		}
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
	e.Code, e.Slot = s.code, n
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
	s.tempC = overheatC + m.env.between(0, 4)
	return m.cut(now, n-1), nil
}

// runaway sets the battery in slot n (1-based) into thermal runaway: it
// heats itself, the cabinet cuts the bay at about 60 °C, and the cell goes
// on heating until it smokes. Only clear ends it. An empty bay gets a
// battery first.
func (m *chargerModel) runaway(now time.Time, n int) ([]schemas.Event, error) {
	if n < 1 || n > len(m.slots) {
		return nil, fmt.Errorf("%w: slot %d of %d", ErrArgs, n, len(m.slots))
	}
	s := &m.slots[n-1]
	if !s.battery {
		s.battery, s.socPct = true, m.env.between(60, 95)
	}
	s.runaway = true
	return nil, nil
}

// setMains cuts or restores the cabinet's mains: without it nothing
// charges, while the controller reports on its backup battery.
func (m *chargerModel) setMains(now time.Time, on bool) []schemas.Event {
	if m.mains == on {
		return nil
	}
	m.mains = on
	if on {
		return []schemas.Event{event(now, schemas.EventMainsRestored)}
	}
	return []schemas.Event{event(now, schemas.EventMainsLost)}
}

// clear ends every fault: a runaway battery is taken away, overheated bays
// cool at once and switch back on, the smoke clears, mains returns.
func (m *chargerModel) clear(now time.Time) []schemas.Event {
	out := m.setMains(now, true)
	for i := range m.slots {
		s := &m.slots[i]
		if s.runaway {
			s.runaway, s.battery, s.socPct = false, false, 0
		}
		if !s.fault {
			continue
		}
		s.fault = false
		s.tempC = m.targetTemp(s)
		e := event(now, schemas.EventFaultCleared)
		e.Code, e.Slot = s.code, i+1
		out = append(out, e)
	}
	m.smoke = false
	m.cabinetC = math.Min(m.cabinetC, m.env.climate.outdoorC(now)+cabinetGainC+5)
	return out
}

// powerLost and powerBack: a dark cabinet charges nothing and reports
// nothing; it boots with mains back.
func (m *chargerModel) powerLost(time.Time) { m.mains = false }

func (m *chargerModel) powerBack(time.Time) { m.mains = true }

// nextWake: a cabinet reports changes at its next telemetry, but a bay in
// runaway is watched closely.
func (m *chargerModel) nextWake() time.Time { return time.Time{} }
