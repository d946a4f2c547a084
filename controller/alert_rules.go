package controller

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// Alert rules. Each names what an alert is about; the README lists them
// with their severities and thresholds.
const (
	RuleOffline     = "device.offline"    // major: last will, or three intervals of silence
	RuleStationDown = "station.down"      // critical: every device of a station went quiet
	RuleClockSkew   = "device.clock_skew" // warning: the device's clock is off
	RuleDeviceFault = "device.fault"      // minor: a fault event of a lock, charger or AED

	RuleACFault      = "ac.fault"       // major: the AC reports a fault code
	RuleACNotCooling = "ac.not_cooling" // major
	RuleACNotHeating = "ac.not_heating" // major

	RuleBoltJammed     = "lock.bolt_jammed"     // major
	RuleDoorForced     = "lock.door_forced"     // critical, resolved by a person
	RuleDoorHeld       = "lock.door_held"       // minor
	RuleTamper         = "lock.tamper"          // critical, resolved by a person
	RuleLockBattery    = "lock.battery_low"     // warning
	RuleAllowlistStale = "lock.allowlist_stale" // minor: the terminal's allow-list is old

	RuleSlotOverheat = "charger.slot_overheat" // critical; the slot is switched off
	RuleSmoke        = "charger.smoke"         // critical
	RuleMainsLost    = "charger.mains_lost"    // major
	RuleSlotFault    = "charger.slot_fault"    // minor

	RuleAEDNotReady    = "aed.not_ready"      // critical
	RuleAEDOpened      = "aed.cabinet_opened" // critical, never silenced, resolved by a person
	RuleAEDPads        = "aed.pads_expiring"  // warning, major within a week
	RuleAEDBattery     = "aed.battery_low"    // major
	RuleAEDCabinetTemp = "aed.cabinet_temp"   // minor
)

// AlertRules lists every rule.
var AlertRules = []string{
	RuleOffline, RuleStationDown, RuleClockSkew, RuleDeviceFault,
	RuleACFault, RuleACNotCooling, RuleACNotHeating,
	RuleBoltJammed, RuleDoorForced, RuleDoorHeld, RuleTamper, RuleLockBattery, RuleAllowlistStale,
	RuleSlotOverheat, RuleSmoke, RuleMainsLost, RuleSlotFault,
	RuleAEDNotReady, RuleAEDOpened, RuleAEDPads, RuleAEDBattery, RuleAEDCabinetTemp,
}

// RuleOptions holds the thresholds of the rules; zero means the default.
type RuleOptions struct {
	// ACWindow is how long an AC must run in cool (heat) mode before it is
	// judged, and the span over which the room must change. Default 20 min.
	ACWindow time.Duration
	// ACMarginC: not cooling when the room is still more than this above
	// the setpoint (below, heating). Default 2 °C.
	ACMarginC float64
	// ACMinChangeC: not cooling when the room fell less than this over the
	// window (rose, heating). Default 1 °C.
	ACMinChangeC float64
	// DoorHeld is how long a door may stay open. Default 5 minutes.
	DoorHeld time.Duration
	// LockBatteryPct: a door terminal's battery under it warns. Default 20.
	LockBatteryPct float64
	// SlotHotC: a charger slot at or above it overheats. Default 60 °C.
	SlotHotC float64
	// SlotRiseCPerMin: a slot rising this fast overheats. Default 5 °C a
	// minute, measured over at least 20 seconds of readings.
	SlotRiseCPerMin float64
	// AEDPadsWarnDays and AEDPadsMajorDays: pads expiring within them warn
	// (warning, then major). Defaults 30 and 7 days.
	AEDPadsWarnDays  int
	AEDPadsMajorDays int
	// AEDBatteryPct: an AED battery under it is major. Default 20.
	AEDBatteryPct float64
	// AEDMinC and AEDMaxC bound the AED cabinet's temperature. Defaults 0
	// and 50 °C (both zero means the defaults).
	AEDMinC float64
	AEDMaxC float64
	// ClockSkew: a device whose clock is off by more warns. Default 5 min.
	ClockSkew time.Duration
}

func (r *RuleOptions) defaults() {
	if r.ACWindow <= 0 {
		r.ACWindow = 20 * time.Minute
	}
	if r.ACMarginC <= 0 {
		r.ACMarginC = 2
	}
	if r.ACMinChangeC <= 0 {
		r.ACMinChangeC = 1
	}
	if r.DoorHeld <= 0 {
		r.DoorHeld = 5 * time.Minute
	}
	if r.LockBatteryPct <= 0 {
		r.LockBatteryPct = 20
	}
	if r.SlotHotC <= 0 {
		r.SlotHotC = 60
	}
	if r.SlotRiseCPerMin <= 0 {
		r.SlotRiseCPerMin = 5
	}
	if r.AEDPadsWarnDays <= 0 {
		r.AEDPadsWarnDays = 30
	}
	if r.AEDPadsMajorDays <= 0 {
		r.AEDPadsMajorDays = 7
	}
	if r.AEDBatteryPct <= 0 {
		r.AEDBatteryPct = 20
	}
	if r.AEDMinC == 0 && r.AEDMaxC == 0 {
		r.AEDMaxC = 50
	}
	if r.ClockSkew <= 0 {
		r.ClockSkew = 5 * time.Minute
	}
}

// deviceState is what the rules remember of a device between messages.
type deviceState struct {
	station string
	// AC: the mode it has run in since acSince, and its recent readings.
	acMode  string
	acSince time.Time
	ac      []reading
	// Door terminal: since when the door is open, and whether the
	// terminal itself reported this opening held (door_held).
	doorOpenSince time.Time
	doorHeldSaid  bool
	// Charger: recent temperatures of each slot.
	slots map[int][]reading
}

type reading struct {
	at time.Time
	v  float64
}

// slotRiseSpan is the span of readings a slot's rise is measured over, and
// slotRiseMin the shortest that counts.
const (
	slotRiseSpan = time.Minute
	slotRiseMin  = 20 * time.Second
	maxReadings  = 512
)

// action is something a rule does besides alerting, run outside the lock.
type action func()

// Observe runs the rules on one valid message. Give it to Ingest.Observe.
//
// The rules are judged under the rules' own lock; the alerts' lock is
// taken only when something is to change: a problem shows, or a problem
// that has an alert (or a held offline device) may have cleared. Most
// messages say all is well and take no lock but the rules'.
func (e *Alerts) Observe(obs Observation) {
	d := obs.Device
	st := e.stationName(d.Station)
	offline := obs.Channel == schemas.ChannelStatus && obs.Presence == devices.PresenceOffline
	back := !offline && (obs.Channel != schemas.ChannelStatus || obs.Presence == devices.PresenceOnline)
	sigs := make([]signal, 0, 8)
	if back {
		// Any valid message but a will is a sign of life (a retained online
		// status only from a connection the twin had not seen).
		sigs = append(sigs, signal{station: d.Station, device: d.ID, rule: RuleOffline},
			signal{station: d.Station, rule: RuleStationDown})
	}
	e.stMu.Lock()
	if !obs.Retained {
		sigs = e.clockSignals(obs, sigs)
	}
	switch {
	case obs.Telem != nil:
		sigs = e.telemetrySignals(d, st, obs.Telem, obs.At, sigs)
	case obs.Event != nil:
		sigs = e.eventSignals(d, st, obs.Event, sigs)
	}
	e.stMu.Unlock()

	need := offline || (back && e.held.Load() > 0)
	for i := range sigs {
		need = need || sigs[i].active
	}
	if !need && e.anyKept(d.Station) {
		for i := range sigs {
			_, known := e.keys.Load(alertKey(sigs[i].station, sigs[i].device, sigs[i].rule,
				sigs[i].subject))
			if need = known; need {
				break
			}
		}
	}
	if !need {
		return
	}
	var acts []action
	e.mu.Lock()
	switch {
	case offline:
		e.deviceOffline(d.ID, d.Station, obs.At, "status")
	case back:
		e.unhold(d.ID)
	}
	for _, s := range sigs {
		a, raised := e.apply(s, obs.At)
		if raised && s.rule == RuleSlotOverheat {
			acts = append(acts, e.slotOff(a))
		}
	}
	e.mu.Unlock()
	for _, f := range acts {
		f()
	}
}

// stationName names a station for summaries: "ys-001 (Chengguan)".
func (e *Alerts) stationName(id string) string {
	if n, ok := e.names.Load(id); ok {
		return n.(string)
	}
	st, err := e.o.Registry.Station(id)
	if err != nil {
		return id
	}
	n := id
	if st.Name != "" {
		n = id + " (" + st.Name + ")"
	}
	e.names.Store(id, n)
	return n
}

func (e *Alerts) state(d devices.Device) *deviceState {
	s, ok := e.states[d.ID]
	if !ok {
		s = &deviceState{station: d.Station}
		e.states[d.ID] = s
	}
	return s
}

// devSignal is a device's signal; its summary is formatted only when the
// alert needs it.
func devSignal(d devices.Device, rule, sev string, active bool, format string,
	args ...any) signal {
	return signal{station: d.Station, device: d.ID, rule: rule, severity: sev, active: active,
		format: format, args: args}
}

// devSignalOn is devSignal for the rules every message of a kind runs,
// nearly always inactive: args builds the summary's arguments only when
// the signal is active, since an inactive one needs no summary and boxing
// them was a third of a telemetry message's allocations.
func devSignalOn(d devices.Device, rule, sev string, active bool, format string,
	args func() []any) signal {
	s := signal{station: d.Station, device: d.ID, rule: rule, severity: sev, active: active}
	if active {
		s.format, s.args = format, args()
	}
	return s
}

// clockSignals judges the device's clock from the time its message carries.
func (e *Alerts) clockSignals(obs Observation, sigs []signal) []signal {
	var ts int64
	switch {
	case obs.Telem != nil:
		ts = obs.Telem.TS
	case obs.Event != nil:
		ts = obs.Event.TS
	case obs.Status != nil:
		ts = obs.Status.TS
	case obs.Result != nil:
		ts = obs.Result.TS
	case obs.Access != nil:
		ts = obs.Access.TS
	}
	if ts <= 0 {
		return sigs
	}
	skew := time.Duration(ts-obs.At.UnixMilli()) * time.Millisecond
	active := skew > e.o.Rules.ClockSkew || skew < -e.o.Rules.ClockSkew
	return append(sigs, devSignalOn(obs.Device, RuleClockSkew, SeverityWarning, active,
		"clock of %s is %s off", func() []any { return []any{obs.Device.ID, skew.Round(time.Second)} }))
}

func (e *Alerts) telemetrySignals(d devices.Device, st string, t *schemas.Telemetry, at time.Time,
	sigs []signal) []signal {
	r := &e.o.Rules
	switch {
	case t.AC != nil:
		ac := t.AC
		sigs = append(sigs, devSignalOn(d, RuleACFault, SeverityMajor, ac.Fault != "",
			"AC %s at %s reports fault %s", func() []any { return []any{d.ID, st, ac.Fault} }))
		sigs = e.acSignals(d, st, ac, at, sigs)
	case t.Lock != nil:
		l := t.Lock
		atStation := func() []any { return []any{st} }
		sigs = append(sigs, devSignalOn(d, RuleBoltJammed, SeverityMajor, l.Bolt == schemas.BoltJammed,
			"door bolt jammed at %s", atStation))
		if l.BatteryPct != nil {
			sigs = append(sigs, devSignalOn(d, RuleLockBattery, SeverityWarning,
				*l.BatteryPct < r.LockBatteryPct,
				"door terminal battery at %.0f %% at %s", func() []any { return []any{*l.BatteryPct, st} }))
		}
		tamper := devSignalOn(d, RuleTamper, SeverityCritical, l.Tamper,
			"door terminal tampered with at %s", atStation)
		tamper.manual = true
		sigs = append(sigs, tamper)
		ds := e.state(d)
		if l.Door == schemas.DoorOpen {
			if ds.doorOpenSince.IsZero() {
				ds.doorOpenSince = at
			}
		} else {
			ds.doorOpenSince, ds.doorHeldSaid = time.Time{}, false
		}
		sigs = append(sigs, e.doorHeldSignal(d, st, ds, at))
	case t.Charger != nil:
		c := t.Charger
		atStation := func() []any { return []any{st} }
		sigs = append(sigs,
			devSignalOn(d, RuleSmoke, SeverityCritical, c.Smoke,
				"smoke in the charger cabinet at %s", atStation),
			devSignalOn(d, RuleMainsLost, SeverityMajor, !c.Mains,
				"charger cabinet at %s lost mains power", atStation))
		ds := e.state(d)
		if ds.slots == nil {
			ds.slots = map[int][]reading{}
		}
		for _, sl := range c.Slots {
			sub := strconv.Itoa(sl.Slot)
			s := devSignalOn(d, RuleSlotFault, SeverityMinor, sl.State == schemas.SlotFault,
				"charger slot %d in fault at %s", func() []any { return []any{sl.Slot, st} })
			s.subject = sub
			sigs = append(sigs, s)
			if sl.TempC == nil {
				continue
			}
			sigs = append(sigs, e.slotHeatSignal(d, st, ds, sl.Slot, *sl.TempC, at))
		}
	case t.AED != nil:
		sigs = e.aedSignals(d, st, t.AED, at, sigs)
	}
	return sigs
}

// acSignals judges whether an AC cools (heats) the room: after ACWindow in
// one mode, the room must be within ACMarginC of the setpoint or have
// moved ACMinChangeC towards it over the window.
func (e *Alerts) acSignals(d devices.Device, st string, ac *schemas.ACState, at time.Time,
	sigs []signal) []signal {
	r := &e.o.Rules
	ds := e.state(d)
	mode := ""
	if ac.Power && (ac.Mode == schemas.ModeCool || ac.Mode == schemas.ModeHeat) {
		mode = ac.Mode
	}
	if mode != ds.acMode {
		ds.acMode, ds.acSince, ds.ac = mode, at, nil
	}
	cooling, heating := false, false
	var change float64
	if mode != "" {
		ds.ac = append(ds.ac, reading{at: at, v: ac.RoomC})
		cut := at.Add(-r.ACWindow)
		for len(ds.ac) > 1 && (!ds.ac[1].at.After(cut) || len(ds.ac) > maxReadings) {
			ds.ac = ds.ac[1:]
		}
		if at.Sub(ds.acSince) >= r.ACWindow {
			ref := ds.ac[0]
			if mode == schemas.ModeCool {
				change = ref.v - ac.RoomC
				cooling = ac.RoomC > ac.SetpointC+r.ACMarginC && change < r.ACMinChangeC
			} else {
				change = ac.RoomC - ref.v
				heating = ac.RoomC < ac.SetpointC-r.ACMarginC && change < r.ACMinChangeC
			}
		}
	}
	span := r.ACWindow.Round(time.Minute)
	args := func() []any { return []any{d.ID, st, ac.RoomC, ac.SetpointC, change, span} }
	return append(sigs,
		devSignalOn(d, RuleACNotCooling, SeverityMajor, cooling,
			"AC %s at %s not cooling: room %.1f °C, setpoint %.1f °C, fell %.1f °C in %v", args),
		devSignalOn(d, RuleACNotHeating, SeverityMajor, heating,
			"AC %s at %s not heating: room %.1f °C, setpoint %.1f °C, rose %.1f °C in %v", args))
}

// doorHeldSignal: a door open longer than Rules.DoorHeld, or one its
// terminal reported held (terminals have thresholds of their own), until
// it closes.
func (e *Alerts) doorHeldSignal(d devices.Device, st string, ds *deviceState,
	now time.Time) signal {
	open := time.Duration(0)
	if !ds.doorOpenSince.IsZero() {
		open = now.Sub(ds.doorOpenSince)
	}
	active := open > e.o.Rules.DoorHeld || ds.doorHeldSaid
	if open <= 0 {
		return devSignal(d, RuleDoorHeld, SeverityMinor, active, "door held open at %s", st)
	}
	return devSignal(d, RuleDoorHeld, SeverityMinor, active,
		"door held open for %v at %s", open.Round(time.Second), st)
}

// slotHeatSignal judges one slot's temperature and how fast it rises.
func (e *Alerts) slotHeatSignal(d devices.Device, st string, ds *deviceState, slot int,
	temp float64, at time.Time) signal {
	r := &e.o.Rules
	rs := append(ds.slots[slot], reading{at: at, v: temp})
	cut := at.Add(-slotRiseSpan)
	for len(rs) > 1 && (rs[0].at.Before(cut) || len(rs) > maxReadings) {
		rs = rs[1:]
	}
	ds.slots[slot] = rs
	rate := 0.0
	if span := at.Sub(rs[0].at); span >= slotRiseMin {
		rate = (temp - rs[0].v) / span.Minutes()
	}
	hot, rising := temp >= r.SlotHotC, rate >= r.SlotRiseCPerMin
	s := devSignalOn(d, RuleSlotOverheat, SeverityCritical, hot || rising,
		"charger slot %d at %.1f °C at %s", func() []any { return []any{slot, temp, st} })
	if rising && !hot {
		s.format, s.args = "charger slot %d rising %.1f °C a minute (now %.1f °C) at %s",
			[]any{slot, rate, temp, st}
	}
	s.subject = strconv.Itoa(slot)
	return s
}

func (e *Alerts) aedSignals(d devices.Device, st string, a *schemas.AEDState, at time.Time,
	sigs []signal) []signal {
	r := &e.o.Rules
	why := "not ready"
	if a.SelfTest == schemas.SelfTestFail {
		why = "failed its self-test"
	}
	sigs = append(sigs,
		devSignalOn(d, RuleAEDNotReady, SeverityCritical, !a.Ready || a.SelfTest == schemas.SelfTestFail,
			"AED at %s %s", func() []any { return []any{st, why} }),
		devSignalOn(d, RuleAEDBattery, SeverityMajor, a.BatteryPct < r.AEDBatteryPct,
			"AED battery at %.0f %% at %s", func() []any { return []any{a.BatteryPct, st} }))
	opened := e.aedOpenedSignal(d, st)
	opened.active = a.CabinetOpen
	sigs = append(sigs, opened)
	if a.CabinetC != nil {
		c := *a.CabinetC
		sigs = append(sigs, devSignalOn(d, RuleAEDCabinetTemp, SeverityMinor, c < r.AEDMinC || c > r.AEDMaxC,
			"AED cabinet at %.1f °C at %s (keep within %g to %g °C)",
			func() []any { return []any{c, st, r.AEDMinC, r.AEDMaxC} }))
	}
	if exp, err := time.ParseInLocation(time.DateOnly, a.PadsExpire, e.o.Location); err == nil {
		y, m, dd := at.In(e.o.Location).Date()
		today := time.Date(y, m, dd, 0, 0, 0, 0, e.o.Location)
		days := int(math.Round(exp.Sub(today).Hours() / 24))
		sev := SeverityWarning
		if days <= r.AEDPadsMajorDays {
			sev = SeverityMajor
		}
		s := devSignalOn(d, RuleAEDPads, sev, days <= r.AEDPadsWarnDays,
			"AED pads at %s expire on %s, in %d days", func() []any { return []any{st, a.PadsExpire, days} })
		if s.active && days < 0 {
			s.format, s.args = "AED pads at %s expired on %s", []any{st, a.PadsExpire}
		}
		sigs = append(sigs, s)
	}
	return sigs
}

func (e *Alerts) aedOpenedSignal(d devices.Device, st string) signal {
	s := devSignal(d, RuleAEDOpened, SeverityCritical, true,
		"AED taken: possible cardiac arrest at station %s", st)
	s.manual = true
	return s
}

func (e *Alerts) eventSignals(d devices.Device, st string, ev *schemas.Event,
	sigs []signal) []signal {
	var s signal
	switch ev.Type {
	case schemas.EventFaultRaised, schemas.EventFaultCleared:
		active := ev.Type == schemas.EventFaultRaised
		if d.Kind == schemas.KindAC {
			s = devSignal(d, RuleACFault, SeverityMajor, active,
				"AC %s at %s reports fault %s", d.ID, st, ev.Code)
		} else {
			s = devSignal(d, RuleDeviceFault, SeverityMinor, active,
				"%s %s at %s reports fault %s", d.Kind, d.ID, st, ev.Code)
			s.subject = ev.Code
		}
	case schemas.EventDoorForced:
		s = devSignal(d, RuleDoorForced, SeverityCritical, true,
			"door forced at %s", st)
		s.manual = true
	case schemas.EventTamper:
		s = devSignal(d, RuleTamper, SeverityCritical, true,
			"door terminal tampered with at %s", st)
		s.manual = true
	case schemas.EventDoorHeld:
		// Held until a report shows the door closed.
		e.state(d).doorHeldSaid = true
		s = devSignal(d, RuleDoorHeld, SeverityMinor, true, "door held open at %s", st)
	case schemas.EventCabinetOpened:
		s = e.aedOpenedSignal(d, st)
	case schemas.EventSmoke:
		s = devSignal(d, RuleSmoke, SeverityCritical, true,
			"smoke in the charger cabinet at %s", st)
	case schemas.EventMainsLost, schemas.EventMainsRestored:
		s = devSignal(d, RuleMainsLost, SeverityMajor, ev.Type == schemas.EventMainsLost,
			"charger cabinet at %s lost mains power", st)
	default:
		return sigs
	}
	if s.active {
		s.event = true
	}
	return append(sigs, s)
}

// slotOff returns the action that switches an overheating slot off with an
// audited command. e.mu must be held.
func (e *Alerts) slotOff(a *Alert) action {
	if e.o.Commands == nil {
		return func() {}
	}
	slot := 0
	fmt.Sscan(a.Subject, &slot)
	req := CommandRequest{Device: a.Device, Name: schemas.CmdChargerSlot,
		Args:   map[string]any{"slot": float64(slot), "on": false},
		Issuer: "rule:" + RuleSlotOverheat, Reason: a.Summary + " (alert " + a.ID + ")"}
	return func() {
		id, err := e.o.Commands.IssueCommand(req)
		if err != nil {
			e.commands.WithLabelValues("error").Inc()
			e.log.Error("overheating charger slot not switched off", "device", req.Device,
				"slot", slot, "err", err)
			return
		}
		e.commands.WithLabelValues("ok").Inc()
		e.log.Warn("overheating charger slot switched off", "device", req.Device, "slot", slot,
			"command", id)
	}
}

// sweepRules runs the rules that depend on time passing: doors held open
// without a new message, and stale allow-lists.
func (e *Alerts) sweepRules(now time.Time) {
	var stale []TerminalStatus
	if e.o.AllowLists != nil {
		stale = e.o.AllowLists.StaleTerminals()
	}
	names := map[string]string{}
	name := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		names[id] = e.stationName(id)
		return names[id]
	}
	var held []signal
	e.stMu.Lock()
	for id, ds := range e.states {
		if ds.doorOpenSince.IsZero() {
			continue
		}
		d := devices.Device{ID: id, Station: ds.station, Kind: schemas.KindLock}
		if s := e.doorHeldSignal(d, name(ds.station), ds, now); s.active {
			held = append(held, s)
		}
	}
	e.stMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range held {
		e.apply(s, now)
	}
	if e.o.AllowLists == nil {
		return
	}
	isStale := map[string]bool{}
	for _, ts := range stale {
		isStale[ts.Device] = true
		d := devices.Device{ID: ts.Device, Station: ts.Station}
		e.apply(devSignal(d, RuleAllowlistStale, SeverityMinor, true,
			"door terminal %s at %s holds allow-list version %d, behind since %s",
			ts.Device, name(ts.Station), deref(ts.Reported), ts.BehindSince.Format(time.RFC3339)), now)
	}
	for _, a := range e.alerts {
		if a.Rule == RuleAllowlistStale && a.Open() && !isStale[a.Device] {
			d := devices.Device{ID: a.Device, Station: a.Station}
			e.apply(devSignal(d, RuleAllowlistStale, a.Severity, false, "%s", a.Summary), now)
		}
	}
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
