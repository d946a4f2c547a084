package simulators

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/waystation/waystation/schemas"
)

// Limits and figures of a simulated split air conditioner of about 2 HP.
const (
	minSetpointC  = 16.0
	maxSetpointC  = 32.0
	standbyW      = 3.0
	fanOnlyW      = 45.0
	pullDownW     = 2200.0 // compressor flat out, far from the setpoint
	passiveGainC  = 2.0    // a closed station runs this much warmer than outside
	coolingTau    = 20 * time.Minute
	heatingTau    = 25 * time.Minute
	dryingTau     = 40 * time.Minute
	driftTau      = 90 * time.Minute // a room with the unit off follows outside this slowly
	fanTau        = 60 * time.Minute
	humidityTau   = 30 * time.Minute
	coolingRHPct  = 50.0
	dryingRHPct   = 42.0
	roomNoiseC    = 0.05
	roomMinC      = -10.0
	roomMaxC      = 50.0
	summerSetC    = 26.0 // public buildings cool to no lower than 26 °C
	winterSetC    = 20.0 // and heat to no higher than 20 °C
	midSeasonSetC = 24.0

	fanAuto = "auto"
	fanLow  = "low"
	fanMid  = "mid"
	fanHigh = "high"
)

// acModel is an air conditioner and the room it serves: the room moves
// toward the setpoint when the unit works and toward the outdoor temperature
// when it is off, faulty or blowing air only.
type acModel struct {
	env *env

	power     bool
	mode      string
	setpointC float64
	fan       string
	fault     string

	roomC       float64
	humidityPct float64
	outdoorC    float64
	powerW      float64
}

// newAC returns a unit in the state a station would likely be in at now:
// set for the season, more often on during the day in hot or cold weather.
func newAC(e *env, now time.Time) *acModel {
	m := &acModel{env: e, fan: fanAuto}
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

	m.outdoorC = e.climate.outdoorC(now)
	target, _, working := m.target(m.outdoorC + passiveGainC)
	m.roomC = target + e.noise(0.4)
	if !working {
		m.roomC = m.outdoorC + passiveGainC + e.noise(0.8)
	}
	m.humidityPct = m.targetHumidity(e.climate.outdoorHumidityPct(now), working)
	m.powerW = m.draw(m.outdoorC+passiveGainC, working)
	return m
}

func (m *acModel) step(now time.Time, dt time.Duration) []schemas.Event {
	m.outdoorC = m.env.climate.outdoorC(now) + m.env.noise(0.1)
	passive := m.outdoorC + passiveGainC

	target, tau, working := m.target(passive)
	if working {
		tau = m.fanScaled(tau)
	}
	m.roomC = clamp(relax(m.roomC, target, dt, tau)+m.env.noise(roomNoiseC), roomMinC, roomMaxC)

	rhTarget := m.targetHumidity(m.env.climate.outdoorHumidityPct(now), working)
	m.humidityPct = clamp(relax(m.humidityPct, rhTarget, dt, humidityTau)+m.env.noise(0.3), 5, 99)

	m.powerW = m.draw(passive, working) * (1 + m.env.noise(0.02))
	return nil
}

// target returns where the room is heading, how fast, and whether the
// compressor is working to get it there.
func (m *acModel) target(passive float64) (float64, time.Duration, bool) {
	if !m.power || m.fault != "" {
		return passive, driftTau, false
	}
	switch m.mode {
	case schemas.ModeCool:
		if passive > m.setpointC {
			return m.setpointC, coolingTau, true
		}
	case schemas.ModeHeat:
		if passive < m.setpointC {
			return m.setpointC, heatingTau, true
		}
	case schemas.ModeAuto:
		if math.Abs(passive-m.setpointC) > 1 {
			tau := coolingTau
			if passive < m.setpointC {
				tau = heatingTau
			}
			return m.setpointC, tau, true
		}
	case schemas.ModeDry:
		// Dehumidifying runs the compressor gently and cools a little.
		return math.Max(passive-2, m.setpointC), dryingTau, true
	case schemas.ModeFan:
		return passive, fanTau, false
	}
	return passive, driftTau, false
}

// fanScaled stretches or shortens a working time constant by fan speed:
// more air over the coil moves heat faster.
func (m *acModel) fanScaled(tau time.Duration) time.Duration {
	switch m.fan {
	case fanLow:
		return tau * 3 / 2
	case fanHigh:
		return tau * 4 / 5
	}
	return tau
}

// targetHumidity is the room humidity the unit is heading for: cooling
// and drying wring water out of the air, otherwise the room follows outside.
func (m *acModel) targetHumidity(outdoorRH float64, working bool) float64 {
	if working && m.mode == schemas.ModeDry {
		return dryingRHPct
	}
	if working && m.roomC < m.outdoorC+passiveGainC {
		return coolingRHPct
	}
	return clamp(outdoorRH-3*(m.roomC-m.outdoorC), 20, 98)
}

// draw is the electrical power the unit takes: an inverter pulls hard while
// the room is far from the setpoint and settles to a holding load that
// grows with the gap between the setpoint and the weather.
func (m *acModel) draw(passive float64, working bool) float64 {
	switch {
	case !m.power:
		return standbyW
	case !working:
		return fanOnlyW
	}
	hold := clamp(250+90*math.Abs(passive-m.setpointC), 250, 1400)
	pull := clamp(math.Abs(m.roomC-m.setpointC)/3, 0, 1)
	return hold + (pullDownW-hold)*pull
}

func (m *acModel) encode(meta schemas.Meta) ([]byte, error) {
	s := schemas.ACState{
		Power:       m.power,
		Mode:        m.mode,
		SetpointC:   m.setpointC,
		RoomC:       round1(m.roomC),
		OutdoorC:    ptr(round1(m.outdoorC)),
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
	m.powerW = m.draw(m.outdoorC+passiveGainC, m.power && m.fault == "")
	return nil, nil
}

// setFault raises code, or clears the fault when code is empty.
func (m *acModel) setFault(now time.Time, code string) []schemas.Event {
	if code == m.fault {
		return nil
	}
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
	}
	m.fault = code
	return out
}

func (m *acModel) clear(now time.Time) []schemas.Event {
	return m.setFault(now, "")
}
