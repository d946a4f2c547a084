package simulators

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/waystation/waystation/schemas"
)

// AED cabinet figures.
const (
	selfTestPass       = "pass"
	selfTestFail       = "fail"
	codeSelfTestFailed = "self_test_failed"
	codeBatteryLow     = "battery_low"
	codePadsExpired    = "pads_expired"

	selfTestFromHour     = 2 // daily self-tests run between 02:00 and 04:00 local
	selfTestWindow       = 2 * time.Hour
	aedDrainPctPerDay    = 0.07 // a battery lasts about four years on standby
	selfTestDrainPct     = 0.02
	aedReadyBatteryPct   = 20.0
	padsLifeMinDays      = 365
	padsLifeMaxDays      = 730
	cabinetTau           = 30 * time.Minute
	cabinetMinC          = 4.0 // a heater keeps the cabinet from freezing
	cabinetMaxC          = 42.0
	padsExpireDateLayout = "2006-01-02"
)

// aedModel is a defibrillator cabinet: the unit self-tests every night,
// its battery drains slowly, its pads expire on a date, and its cabinet
// follows the weather within what a heated, ventilated box allows.
type aedModel struct {
	env *env

	failing     bool   // self-tests fail until the fault is cleared
	faultCode   string // what the last self-test found wrong; "" when it passed
	selfTest    string
	selfTestAt  time.Time
	nextTest    time.Time
	batteryPct  float64
	padsExpire  time.Time
	cabinetOpen bool
	cabinetC    float64
	now         time.Time
}

// newAED returns a ready unit that passed last night's self-test, with pads
// good for one to two more years.
func newAED(e *env, now time.Time) *aedModel {
	m := &aedModel{env: e, selfTest: selfTestPass, now: now}
	offset := time.Duration(e.rng.Int64N(int64(selfTestWindow/time.Minute))) * time.Minute
	m.nextTest = nextAt(now, e.climate.loc, selfTestFromHour, offset)
	m.selfTestAt = m.nextTest.AddDate(0, 0, -1)
	m.batteryPct = e.between(70, 100)
	m.padsExpire = now.AddDate(0, 0, padsLifeMinDays+e.rng.IntN(padsLifeMaxDays-padsLifeMinDays))
	m.cabinetC = m.cabinetTarget(now)
	return m
}

// nextAt returns the first time after now that is hour:00 plus offset, local.
func nextAt(now time.Time, loc *time.Location, hour int, offset time.Duration) time.Time {
	local := now.In(loc)
	y, mo, d := local.Date()
	t := time.Date(y, mo, d, hour, 0, 0, 0, loc).Add(offset)
	if !t.After(now) {
		t = time.Date(y, mo, d+1, hour, 0, 0, 0, loc).Add(offset)
	}
	return t
}

func (m *aedModel) step(now time.Time, dt time.Duration) []schemas.Event {
	m.now = now
	m.batteryPct = clamp(m.batteryPct-aedDrainPctPerDay*dt.Hours()/24, 0, 100)
	m.cabinetC = relax(m.cabinetC, m.cabinetTarget(now), dt, cabinetTau) + m.env.noise(0.05)

	var out []schemas.Event
	if now.Sub(m.nextTest) > 24*time.Hour {
		// Asleep for days (a long power cut): report only the latest test.
		days := int(now.Sub(m.nextTest) / (24 * time.Hour))
		m.nextTest = m.nextTest.AddDate(0, 0, days)
	}
	for !now.Before(m.nextTest) {
		out = append(out, m.runSelfTest(m.nextTest)...)
		m.nextTest = m.nextTest.AddDate(0, 0, 1)
	}
	return out
}

// runSelfTest runs the unit's self-test at t. It fails on an internal
// fault, a battery too low to shock, or pads past their date, and raises
// (or clears) the fault that says which.
func (m *aedModel) runSelfTest(t time.Time) []schemas.Event {
	m.selfTestAt = t
	m.batteryPct = clamp(m.batteryPct-selfTestDrainPct, 0, 100)
	code := ""
	switch {
	case m.failing:
		code = codeSelfTestFailed
	case m.batteryPct < aedReadyBatteryPct:
		code = codeBatteryLow
	case !t.Before(m.padsExpire):
		code = codePadsExpired
	}
	m.selfTest = selfTestPass
	if code != "" {
		m.selfTest = selfTestFail
	}

	e := event(t, schemas.EventSelfTest)
	e.Detail = m.selfTest
	out := []schemas.Event{e}
	if code != m.faultCode {
		if m.faultCode != "" {
			f := event(t, schemas.EventFaultCleared)
			f.Code = m.faultCode
			out = append(out, f)
		}
		if code != "" {
			f := event(t, schemas.EventFaultRaised)
			f.Code = code
			out = append(out, f)
		}
		m.faultCode = code
	}
	return out
}

// cabinetTarget is where the cabinet temperature settles with the weather.
func (m *aedModel) cabinetTarget(now time.Time) float64 {
	return clamp(0.7*m.env.climate.outdoorC(now)+6, cabinetMinC, cabinetMaxC)
}

// ready is what the unit's indicator shows: passed its last self-test, has
// enough battery and pads in date. An open cabinet does not change it: the
// AED is most likely in use.
func (m *aedModel) ready() bool {
	padsOK := m.now.Before(m.padsExpire)
	return m.selfTest == selfTestPass && m.batteryPct >= aedReadyBatteryPct && padsOK
}

func (m *aedModel) encode(meta schemas.Meta) ([]byte, error) {
	s := schemas.AEDState{
		Ready:       m.ready(),
		SelfTest:    m.selfTest,
		SelfTestAt:  m.selfTestAt.UnixMilli(),
		BatteryPct:  round1(m.batteryPct),
		PadsExpire:  m.padsExpire.In(m.env.climate.loc).Format(padsExpireDateLayout),
		CabinetOpen: m.cabinetOpen,
		CabinetC:    ptr(round1(m.cabinetC)),
	}
	return json.Marshal(struct {
		schemas.Meta
		*schemas.AEDState
	}{meta, &s})
}

// command: an AED cabinet takes no command but device.reboot.
func (m *aedModel) command(_ time.Time, c schemas.Command) ([]schemas.Event, error) {
	return nil, fmt.Errorf("%w: %s is not an aed command", ErrKind, c.Name)
}

// setCabinet opens or closes the cabinet door.
func (m *aedModel) setCabinet(now time.Time, open bool) []schemas.Event {
	if m.cabinetOpen == open {
		return nil
	}
	m.cabinetOpen = open
	if open {
		return []schemas.Event{event(now, schemas.EventCabinetOpened)}
	}
	return []schemas.Event{event(now, schemas.EventCabinetClosed)}
}

// failSelfTest makes the unit fail a self-test now and every night after
// until the fault is cleared.
func (m *aedModel) failSelfTest(now time.Time) []schemas.Event {
	m.failing = true
	return m.runSelfTest(now)
}

// setBattery sets the battery's charge, as an ageing or a new battery would.
func (m *aedModel) setBattery(pct float64) { m.batteryPct = clamp(pct, 0, 100) }

// setPadsExpire sets the pads' expiry date.
func (m *aedModel) setPadsExpire(t time.Time) { m.padsExpire = t }

// clear closes the cabinet and ends an injected self-test failure; the
// unit tests itself again at once. A flat battery or old pads stay what
// they are.
func (m *aedModel) clear(now time.Time) []schemas.Event {
	out := m.setCabinet(now, false)
	if m.failing {
		m.failing = false
		out = append(out, m.runSelfTest(now)...)
	}
	return out
}

// nextWake is the next self-test: its result goes out at once.
func (m *aedModel) nextWake() time.Time { return m.nextTest }
