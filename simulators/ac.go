package simulators

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/waystation/waystation/schemas"
)

// Figures of a simulated split air conditioner of about 2 HP and the small
// station room it serves: the room gains heat through its walls and roof
// from the outdoor air and the sun, from the people resting in it, from
// its lights and water dispenser, and from outdoor air each time the door
// opens; the unit takes heat out (or puts it in) at a rate its inverter
// sets from the gap to the setpoint, up to a capacity that falls in
// extreme weather.
const (
	minSetpointC = 16.0
	maxSetpointC = 32.0

	ratedCoolingW    = 5000.0 // heat moved at full output, 35 °C outside
	ratedHeatingW    = 5800.0 // at 7 °C outside
	roomHeatCapJPerK = 400e3  // air, furniture and the inner skin of the walls
	minRoomUAWPerK   = 55.0   // heat through walls and roof per kelvin, well insulated
	maxRoomUAWPerK   = 90.0   // and a draughty container
	doorUAWPerK      = 450.0  // air exchanged while the door stands open
	doorOpenS        = 8.0    // one opening, seconds
	personW          = 100.0  // a resting person's sensible heat
	equipmentW       = 60.0   // lights, water dispenser, phone chargers
	solarPeakW       = 200.0  // sun on the roof at a summer noon

	controlBandC  = 0.8              // the inverter runs flat out this far from the setpoint
	integralTimeS = 600.0            // and trims the rest away over about ten minutes
	physicsSubS   = 10.0             // the room model integrates in steps no longer than this
	autoSwitchC   = 1.0              // auto mode turns to cooling or heating this far off
	dryDemand     = 0.3              // dry mode runs the compressor gently
	dryMinRoomC   = 18.0             // and not in a cold room
	standbyW      = 3.0              // switched off
	fanOnlyW      = 45.0             // fan running, compressor stopped
	highPressureC = 37.0             // outside this hot, a unit working hard may trip
	tripDemand    = 0.6              // harder than this
	tripPerHour   = 0.01             // its high-pressure protection this often
	tripCode      = "P1"             // and clears itself after a while
	tripMinClear  = 15 * time.Minute // shortest self-clearing trip
	tripMaxClear  = 45 * time.Minute // longest
	humidityTau   = 30 * time.Minute // room humidity follows its target this slowly
	coolingRHPct  = 50.0             // a cooled room dries toward this
	dryingRHPct   = 42.0             // and dry mode toward this
	roomMinC      = -10.0            // the room never leaves this range
	roomMaxC      = 55.0             //
	summerSetC    = 26.0             // public buildings cool to no lower than 26 °C
	winterSetC    = 20.0             // and heat to no higher than 20 °C
	midSeasonSetC = 24.0             //
	warmUpFor     = 6 * time.Hour    // a new model runs this long to settle its room
	warmUpStep    = 2 * time.Minute  //
	acSensorNoise = 0.05             // room sensor noise per step, °C
	outdoorNoiseC = 0.1              // outdoor sensor noise, °C

	fanAuto = "auto"
	fanLow  = "low"
	fanMid  = "mid"
	fanHigh = "high"
)

// acModel is an air conditioner and the room it serves.
type acModel struct {
	env *env

	power     bool
	mode      string
	setpointC float64
	fan       string
	fault     string
	faultEnds time.Time // a self-clearing trip ends then; zero for a fault that stays

	uaWPerK  float64 // this room's insulation
	tripRate float64 // high-pressure trips per hour flat out in a heat wave
	heating  bool    // auto mode's current direction
	integral float64 // the inverter's integral term, a share of full output
	demand   float64 // output as a share of capacity, 0..1, last step

	roomC       float64
	humidityPct float64
	outdoorC    float64
	powerW      float64
	last        time.Time // the crowd's door openings are counted since then
	at          time.Time // the state is of this time, for the sensors' noise
	warming     bool      // settling the room at construction: no trips
	wasOn       bool      // switched on when the power went; it restarts so
}

// newAC returns a unit in the state a station would likely be in at now:
// set for the season, more often on during the day in hot or cold
// weather, its room settled over the hours before.
func newAC(e *env, now time.Time) *acModel {
	m := &acModel{env: e, fan: fanAuto, tripRate: tripPerHour}
	m.uaWPerK = e.between(minRoomUAWPerK, maxRoomUAWPerK)
	mean := e.climate.dailyMeanC(now)
	switch {
	case mean > heatDaysFromC:
		m.mode, m.setpointC = schemas.ModeCool, summerSetC+float64(e.rng.IntN(2))
	case mean < coldDaysBelowC:
		m.mode, m.setpointC = schemas.ModeHeat, winterSetC-float64(e.rng.IntN(3))
	default:
		m.mode, m.setpointC = schemas.ModeAuto, midSeasonSetC
	}

	hour := now.In(e.climate.loc).Hour()
	onChance := 0.15
	if m.mode != schemas.ModeAuto && hour >= 7 && hour < 22 {
		onChance = 0.6
	}
	m.power = e.rng.Float64() < onChance

	// Settle the room over the hours before now rather than guess it.
	from := now.Add(-warmUpFor)
	m.outdoorC = e.climate.outdoorC(from)
	m.roomC = m.outdoorC + (equipmentW+m.solarW(from))/m.uaWPerK
	m.humidityPct = e.climate.outdoorHumidityPct(from)
	m.last, m.warming = from, true
	for at := from.Add(warmUpStep); !at.After(now); at = at.Add(warmUpStep) {
		m.step(at, warmUpStep)
	}
	m.last, m.warming = now, false
	return m
}

func (m *acModel) step(now time.Time, dt time.Duration) []schemas.Event {
	var out []schemas.Event
	if !m.faultEnds.IsZero() && !now.Before(m.faultEnds) {
		out = append(out, m.setFault(now, "")...)
	}

	m.outdoorC = m.env.climate.outdoorC(now)
	openings := m.env.crowd.doorOpenings(m.last, now)
	m.last = now
	people := float64(m.env.crowd.inside(now))

	// Integrate in short steps: the inverter's control loop is stiff next
	// to a long step.
	secs := dt.Seconds()
	n := max(1, int(math.Ceil(secs/physicsSubS)))
	h := secs / float64(n)
	doorW := 0.0
	if secs > 0 {
		doorW = doorUAWPerK * doorOpenS * float64(openings) / secs // average over the step
	}
	gainsW := equipmentW + m.solarW(now) + people*personW
	var acW float64
	for range n {
		acW = m.control(h)
		flowW := (m.uaWPerK+doorW)*(m.outdoorC-m.roomC) + gainsW + acW
		m.roomC += flowW * h / roomHeatCapJPerK
	}
	m.roomC = clamp(m.roomC, roomMinC, roomMaxC)
	m.at = now

	working := m.demand > 0
	rhTarget := m.targetHumidity(m.env.climate.outdoorHumidityPct(now), working)
	m.humidityPct = clamp(relax(m.humidityPct, rhTarget, dt, humidityTau)+m.env.noise(0.3), 5, 99)
	m.powerW = m.draw(acW) * (1 + m.env.noise(0.02))

	// A unit working hard in a heat wave may trip its high-pressure
	// protection.
	if m.fault == "" && m.demand > tripDemand && !m.heating && m.outdoorC > highPressureC &&
		!m.warming && m.env.chance(m.tripRate, dt) {
		out = append(out, m.setFault(now, tripCode)...)
		m.faultEnds = now.Add(tripMinClear +
			time.Duration(m.env.rng.Int64N(int64(tripMaxClear-tripMinClear))))
	}
	return out
}

// control runs the inverter for h seconds and returns the heat it adds to
// the room, W (negative when cooling).
func (m *acModel) control(h float64) float64 {
	m.demand = 0
	if !m.power || m.fault != "" {
		m.integral = 0
		return 0
	}

	var errC, capW float64
	switch m.mode {
	case schemas.ModeCool:
		m.heating = false
		errC, capW = m.roomC-m.setpointC, m.coolingCapW()
	case schemas.ModeHeat:
		m.heating = true
		errC, capW = m.setpointC-m.roomC, m.heatingCapW()
	case schemas.ModeAuto:
		switch {
		case m.roomC > m.setpointC+autoSwitchC:
			m.heating = false
		case m.roomC < m.setpointC-autoSwitchC:
			m.heating = true
		}
		if m.heating {
			errC, capW = m.setpointC-m.roomC, m.heatingCapW()
		} else {
			errC, capW = m.roomC-m.setpointC, m.coolingCapW()
		}
	case schemas.ModeDry:
		m.heating = false
		if m.roomC > dryMinRoomC {
			m.demand = dryDemand
		}
		return -m.demand * m.coolingCapW() * m.fanShare()
	default: // fan: air moves, no heat
		m.integral = 0
		return 0
	}

	// PI control. The integral stops while the output is pinned and the
	// error would pin it harder, so a long pull-down does not overshoot.
	u := errC/controlBandC + m.integral
	if !(u >= 1 && errC > 0) && !(u <= 0 && errC < 0) {
		m.integral = clamp(m.integral+errC*h/(controlBandC*integralTimeS), 0, 1)
	}
	m.demand = clamp(errC/controlBandC+m.integral, 0, 1)
	q := m.demand * capW * m.fanShare()
	if m.heating {
		return q
	}
	return -q
}

// coolingCapW is the cooling capacity at today's outdoor temperature: it
// falls as the condenser outside gets hotter.
func (m *acModel) coolingCapW() float64 {
	return ratedCoolingW * clamp(1-0.012*(m.outdoorC-35), 0.6, 1.1)
}

// heatingCapW is the heating capacity: it falls as the outdoor coil gets
// colder.
func (m *acModel) heatingCapW() float64 {
	return ratedHeatingW * clamp(1-0.02*(7-m.outdoorC), 0.5, 1.1)
}

// fanShare is the share of capacity the fan speed allows: more air over
// the coil moves more heat.
func (m *acModel) fanShare() float64 {
	switch m.fan {
	case fanLow:
		return 0.7
	case fanMid:
		return 0.9
	}
	return 1
}

// solarW is the sun's heat on the station at t: none at night, most at
// noon in summer.
func (m *acModel) solarW(t time.Time) float64 {
	local := t.In(m.env.climate.loc)
	h := hourOf(local)
	if h < 6 || h > 19 {
		return 0
	}
	season := 0.7 - 0.3*math.Cos(2*math.Pi*(float64(local.YearDay())-coldestDay)/daysPerYear)
	return solarPeakW * season * math.Sin(math.Pi*(h-6)/13)
}

// targetHumidity is the room humidity the unit is heading for: cooling
// and drying wring water out of the air, otherwise the room follows outside.
func (m *acModel) targetHumidity(outdoorRH float64, working bool) float64 {
	if working && m.mode == schemas.ModeDry {
		return dryingRHPct
	}
	if working && !m.heating {
		return coolingRHPct
	}
	return clamp(outdoorRH-3*(m.roomC-m.outdoorC), 20, 98)
}

// draw is the electrical power the unit takes for heat flow acW: the fan,
// and the compressor at an efficiency that falls with the lift between
// indoors and outdoors and rises at part load, as an inverter's does.
func (m *acModel) draw(acW float64) float64 {
	switch {
	case !m.power:
		return standbyW
	case m.demand == 0:
		return fanOnlyW
	}
	lift := math.Abs(m.outdoorC - m.roomC)
	cop := clamp(3.8-0.06*lift+1.0*(1-m.demand), 1.8, 5.5)
	if m.heating {
		cop = clamp(3.5-0.05*lift+0.8*(1-m.demand), 1.5, 5)
	}
	return fanOnlyW + math.Abs(acW)/cop
}

func (m *acModel) encode(meta schemas.Meta) ([]byte, error) {
	s := schemas.ACState{
		Power:       m.power,
		Mode:        m.mode,
		SetpointC:   m.setpointC,
		RoomC:       round1(m.roomC + m.env.sensorNoise(m.at, acSensorNoise)),
		OutdoorC:    ptr(round1(m.outdoorC + m.env.sensorNoise(m.at.Add(1), outdoorNoiseC))),
		HumidityPct: ptr(round1(m.humidityPct)),
		PowerW:      ptr(math.Round(math.Max(0, m.powerW))),
		Fault:       m.fault,
	}
	return json.Marshal(struct {
		schemas.Meta
		*schemas.ACState
	}{meta, &s})
}

// command applies ac.set: any of power (boolean), mode, setpoint_c
// (16-32 °C) and fan (auto, low, mid, high). Nothing changes unless every
// argument given is valid.
func (m *acModel) command(_ time.Time, c schemas.Command) ([]schemas.Event, error) {
	if c.Name != schemas.CmdACSet {
		return nil, fmt.Errorf("%w: %s is not an ac command", ErrKind, c.Name)
	}
	power, hasPower, err := argBool(c.Args, "power")
	if err != nil {
		return nil, err
	}
	mode, hasMode, err := argString(c.Args, "mode", schemas.ModeCool, schemas.ModeHeat,
		schemas.ModeFan, schemas.ModeDry, schemas.ModeAuto)
	if err != nil {
		return nil, err
	}
	setpoint, hasSetpoint, err := argNumber(c.Args, "setpoint_c", minSetpointC, maxSetpointC)
	if err != nil {
		return nil, err
	}
	fan, hasFan, err := argString(c.Args, "fan", fanAuto, fanLow, fanMid, fanHigh)
	if err != nil {
		return nil, err
	}
	if !hasPower && !hasMode && !hasSetpoint && !hasFan {
		return nil, fmt.Errorf("%w: give power, mode, setpoint_c or fan", ErrArgs)
	}

	if hasPower {
		m.power = power
	}
	if hasMode {
		m.mode = mode
	}
	if hasSetpoint {
		m.setpointC = math.Round(setpoint*2) / 2 // units step by half a degree
	}
	if hasFan {
		m.fan = fan
	}
	if !m.power {
		m.demand = 0
	}
	m.powerW = m.draw(m.demand * m.coolingCapW())
	return nil, nil
}

// setFault raises code, or clears the fault when code is empty.
func (m *acModel) setFault(now time.Time, code string) []schemas.Event {
	if code == m.fault {
		return nil
	}
	m.faultEnds = time.Time{}
	var out []schemas.Event
	if m.fault != "" {
		e := event(now, schemas.EventFaultCleared)
		e.Code = m.fault
		out = append(out, e)
	}
	if code != "" {
		e := event(now, schemas.EventFaultRaised)
		e.Code = code
		out = append(out, e)
		m.demand = 0
	}
	m.fault = code
	return out
}

func (m *acModel) clear(now time.Time) []schemas.Event {
	return m.setFault(now, "")
}

// nextWake: the room changes smoothly, and a self-clearing trip is seen at
// the next report.
func (m *acModel) nextWake() time.Time { return time.Time{} }

// powerLost stops the unit; powerBack restarts it as it was, as units with
// auto-restart do.
func (m *acModel) powerLost(time.Time) {
	m.wasOn, m.power, m.demand = m.power, false, 0
}

func (m *acModel) powerBack(time.Time) {
	m.power = m.wasOn
}
