package simulators

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/waystation/waystation/schemas"
)

// newEnv returns a model environment for a station, as a device builds it.
func newEnv(seed int64, station string) *env {
	return &env{
		rng:     rand.New(rand.NewPCG(uint64(seed), 1)),
		climate: newClimate(seed, shanghai(), station),
	}
}

func TestClimateFollowsYingshangSeasons(t *testing.T) {
	cases := []struct {
		month          time.Month
		hour, minute   int
		avgLo, avgHi   float64 // the month's average at that hour
		eachLo, eachHi float64 // any single day
	}{
		{time.January, 14, 30, 4.5, 9.5, 0, 13},    // days 5-8 °C
		{time.January, 5, 30, -3.5, 0.5, -7, 4},    // nights -3..0 °C
		{time.July, 14, 30, 31.5, 36.5, 28, 40},    // days 32-36 °C
		{time.July, 5, 30, 24.5, 28.5, 20, 32},     // nights 25-28 °C
		{time.April, 14, 30, 17, 24, 10, 30},       // spring in between
		{time.October, 5, 30, 10, 17, 5, 22},       // autumn dawn
		{time.December, 23, 0, -1, 6, -6, 10},      // a December night
		{time.August, 20, 0, 27.5, 33.5, 22, 38},   // a summer evening
		{time.February, 11, 0, 2.5, 10.5, -3, 15},  // a late-winter morning
		{time.June, 17, 0, 28, 34.5, 22, 39},       // a June afternoon
		{time.March, 3, 0, 1.5, 8.5, -4, 13},       // a March night
		{time.November, 14, 30, 13, 20.5, 6, 26.5}, // a November afternoon
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %02d:%02d", c.month, c.hour, c.minute), func(t *testing.T) {
			var sum float64
			n := 0
			for _, seed := range []int64{1, 2, 3} {
				for _, station := range []string{"ys-001", "ys-042"} {
					cl := newClimate(seed, shanghai(), station)
					for day := 1; day <= 28; day++ {
						at := time.Date(2025, c.month, day, c.hour, c.minute, 0, 0, shanghai())
						v := cl.outdoorC(at)
						if v < c.eachLo || v > c.eachHi {
							t.Errorf("seed %d %s %s: %.1f °C outside [%g, %g]", seed, station,
								at.Format(time.DateTime), v, c.eachLo, c.eachHi)
						}
						sum += v
						n++
					}
				}
			}
			if avg := sum / float64(n); avg < c.avgLo || avg > c.avgHi {
				t.Errorf("average %.1f °C outside [%g, %g]", avg, c.avgLo, c.avgHi)
			}
		})
	}
}

func TestClimateIsSmoothAndSharedByAStation(t *testing.T) {
	a := newClimate(9, shanghai(), "ys-007")
	b := newClimate(9, shanghai(), "ys-007")
	at := time.Date(2025, 7, 1, 0, 0, 0, 0, shanghai())
	prev := a.outdoorC(at)
	for i := 0; i < 14*24*12; i++ { // two weeks in five-minute steps
		at = at.Add(5 * time.Minute)
		v := a.outdoorC(at)
		if v != b.outdoorC(at) {
			t.Fatalf("two devices of one station disagree at %v", at)
		}
		if d := v - prev; d > 0.5 || d < -0.5 {
			t.Fatalf("outdoor jumped %.2f °C in five minutes at %v", d, at)
		}
		prev = v
		if rh := a.outdoorHumidityPct(at); rh < 30 || rh > 98 {
			t.Fatalf("humidity %.0f%% at %v", rh, at)
		}
	}
}

// stepFor steps m from start for d in steps of step and returns the end
// time and the events.
func stepFor(m model, start time.Time, d, step time.Duration) (time.Time, []schemas.Event) {
	var evs []schemas.Event
	at := start
	for end := start.Add(d); at.Before(end); {
		at = at.Add(step)
		evs = append(evs, m.step(at, step)...)
	}
	return at, evs
}

func TestACCoolsHeatsAndDrifts(t *testing.T) {
	julyNoon := time.Date(2025, 7, 20, 12, 0, 0, 0, shanghai())
	janMorning := time.Date(2025, 1, 15, 7, 0, 0, 0, shanghai())
	cases := []struct {
		name      string
		start     time.Time
		mode      string
		setpointC float64
		roomC     float64
	}{
		{"cooling a hot station", julyNoon, schemas.ModeCool, 26, 35},
		{"heating a cold station", janMorning, schemas.ModeHeat, 20, 4},
		{"auto in summer", julyNoon, schemas.ModeAuto, 25, 34},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newAC(newEnv(1, "ys-001"), c.start)
			m.power, m.mode, m.setpointC, m.roomC = true, c.mode, c.setpointC, c.roomC
			at, _ := stepFor(m, c.start, time.Minute, time.Minute)
			pulling := m.powerW
			if pulling < 1500 {
				t.Errorf("%.0f W while far from the setpoint, want a hard pull", pulling)
			}

			at, _ = stepFor(m, at, 90*time.Minute, time.Minute)
			if diff := m.roomC - c.setpointC; diff > 1 || diff < -1 {
				t.Errorf("room %.1f °C after 90 min, want near %g", m.roomC, c.setpointC)
			}
			if m.powerW >= pulling || m.powerW < 250 {
				t.Errorf("%.0f W holding the setpoint, want less than %.0f and at least 250",
					m.powerW, pulling)
			}

			// Off: the room goes back toward the weather.
			if _, err := m.command(at, schemas.Command{Name: schemas.CmdACSet,
				Args: map[string]any{"power": false}}); err != nil {
				t.Fatal(err)
			}
			held := m.roomC
			stepFor(m, at, 3*time.Hour, 5*time.Minute)
			outside := m.outdoorC + passiveGainC
			if gap, was := abs(m.roomC-outside), abs(held-outside); gap > was/2 {
				t.Errorf("room %.1f °C three hours after switching off, outside %.1f: "+
					"gap %.1f was %.1f", m.roomC, outside, gap, was)
			}
			if m.powerW > 5 {
				t.Errorf("%.0f W while off", m.powerW)
			}
		})
	}
}

func TestACFaultStopsCooling(t *testing.T) {
	start := time.Date(2025, 7, 20, 13, 0, 0, 0, shanghai())
	m := newAC(newEnv(2, "ys-002"), start)
	m.power, m.mode, m.setpointC, m.roomC = true, schemas.ModeCool, 26, 26
	evs := m.setFault(start, "E4")
	if len(evs) != 1 || evs[0].Type != schemas.EventFaultRaised || evs[0].Code != "E4" {
		t.Fatalf("events %+v", evs)
	}
	stepFor(m, start, 2*time.Hour, 5*time.Minute)
	if m.roomC < 28 {
		t.Errorf("room %.1f °C two hours into a fault in July, want it warming", m.roomC)
	}
	if m.powerW < 0.9*fanOnlyW || m.powerW > 1.1*fanOnlyW {
		t.Errorf("%.0f W in fault, want about the fan's %v W", m.powerW, fanOnlyW)
	}
	evs = m.clear(start)
	if len(evs) != 1 || evs[0].Type != schemas.EventFaultCleared || evs[0].Code != "E4" {
		t.Errorf("clear events %+v", evs)
	}
}

func TestChargerChargesAlongACurve(t *testing.T) {
	start := time.Date(2025, 5, 1, 9, 0, 0, 0, shanghai())
	m := newCharger(newEnv(3, "ys-003"), start)
	s := &slot{battery: true, socPct: 10}
	m.charge(s, 2*time.Hour)
	if s.socPct < 60 || s.socPct > 72 {
		t.Errorf("soc %.1f%% after two hours from 10%%, want 60-72", s.socPct)
	}
	if rise := m.targetTemp(s) - m.cabinetC; rise < chargeRiseC-0.1 {
		t.Errorf("charging at full current only %.1f °C above the cabinet", rise)
	}
	m.charge(s, time.Hour)
	atEighty := s.socPct
	m.charge(s, 30*time.Minute)
	if gained := s.socPct - atEighty; gained > bulkRatePctPerH/2 || gained <= 0 {
		t.Errorf("gained %.1f%% in half an hour above %.0f%%, want a taper", gained, atEighty)
	}
	m.charge(s, 3*time.Hour)
	if s.socPct != 100 || s.state() != slotFull {
		t.Errorf("after 6.5 h: soc %.1f%% state %s, want full", s.socPct, s.state())
	}

	// Over many cabinets: 6-12 slots, and some empty, some charging.
	seen := map[string]int{}
	for seed := int64(0); seed < 40; seed++ {
		c := newCharger(newEnv(seed, "ys-003"), start)
		if n := len(c.slots); n < minSlots || n > maxSlots {
			t.Errorf("seed %d: %d slots", seed, n)
		}
		for i := range c.slots {
			seen[c.slots[i].state()]++
		}
	}
	for _, st := range []string{slotEmpty, slotCharging, slotFull} {
		if seen[st] == 0 {
			t.Errorf("no %s slot in 40 cabinets: %v", st, seen)
		}
	}
}

func TestChargerOverheatCoolsAndRevives(t *testing.T) {
	start := time.Date(2025, 8, 1, 15, 0, 0, 0, shanghai())
	m := newCharger(newEnv(4, "ys-004"), start)
	evs, err := m.overheat(start, 1)
	if err != nil || len(evs) != 1 || evs[0].Slot != 1 || evs[0].Code != codeSlotOverheat {
		t.Fatalf("overheat: %+v %v", evs, err)
	}
	if _, err := m.overheat(start, len(m.slots)+1); !errors.Is(err, ErrArgs) {
		t.Errorf("overheat of a slot past the end: %v", err)
	}
	on := schemas.Command{Name: schemas.CmdChargerSlot, Args: map[string]any{"slot": 1.0, "on": true}}
	if _, err := m.command(start, on); !errors.Is(err, errSlotHot) {
		t.Fatalf("switching a hot slot on: %v, want errSlotHot", err)
	}

	at, _ := stepFor(m, start, 90*time.Minute, time.Minute)
	if m.slots[0].tempC > resumeBelowC {
		t.Fatalf("slot still %.1f °C after 90 min cut off", m.slots[0].tempC)
	}
	evs, err = m.command(at, on)
	if err != nil || len(evs) != 1 || evs[0].Type != schemas.EventFaultCleared {
		t.Errorf("reviving a cooled slot: %+v %v", evs, err)
	}
	if st := m.slots[0].state(); st == slotFault || st == slotOff {
		t.Errorf("slot state %s after revival", st)
	}
}

func TestLockThroughADay(t *testing.T) {
	start := time.Date(2025, 9, 10, 0, 0, 0, 0, shanghai())
	m := newLock(newEnv(5, "ys-005"), start)
	battery := m.batteryPct
	samples, open, unlockedShut, visits := 0, 0, 0, 0
	at := start
	for i := 0; i < 24*60; i++ {
		at = at.Add(time.Minute)
		for _, e := range m.step(at, time.Minute) {
			if e.Type == schemas.EventAccessGranted {
				visits++
			}
		}
		samples++
		if m.door == doorOpen {
			open++
		}
		if m.door == doorClosed && m.bolt != boltLocked {
			unlockedShut++
		}
		if m.occupancy < 0 || m.occupancy > maxOccupancy {
			t.Fatalf("occupancy %d", m.occupancy)
		}
	}
	t.Logf("a day: %d visits, door seen open in %d of %d samples", visits, open, samples)
	if share := float64(open) / float64(samples); share > 0.04 {
		t.Errorf("door open in %.0f%% of samples, want mostly closed", share*100)
	}
	if unlockedShut != 0 {
		t.Errorf("bolt unlocked behind a closed door %d times in normal mode", unlockedShut)
	}
	if visits < 25 || visits > 90 {
		t.Errorf("%d visits in a day, want 25-90", visits)
	}
	if drop := battery - m.batteryPct; drop < 0.35 || drop > 0.45 {
		t.Errorf("battery dropped %.2f%% in a day, want about %.1f", drop, lockDrainPctPerDay)
	}

	// Lockdown: nobody comes in, and a remote unlock is refused.
	if _, err := m.command(at, schemas.Command{Name: schemas.CmdLockMode,
		Args: map[string]any{"mode": lockLockdown}}); err != nil {
		t.Fatal(err)
	}
	at, evs := stepFor(m, at, 6*time.Hour, time.Minute)
	if len(evs) != 0 {
		t.Errorf("%d events in lockdown", len(evs))
	}
	unlock := schemas.Command{Name: schemas.CmdLockUnlock}
	if _, err := m.command(at, unlock); !errors.Is(err, errLockdown) {
		t.Errorf("unlock in lockdown: %v", err)
	}
}

func TestLockUnlockHoldsForItsSeconds(t *testing.T) {
	start := time.Date(2025, 9, 10, 2, 0, 0, 0, shanghai())
	m := newLock(newEnv(6, "ys-006"), start)
	if _, err := m.command(start, schemas.Command{Name: schemas.CmdLockUnlock,
		Args: map[string]any{"seconds": 30.0}}); err != nil {
		t.Fatal(err)
	}
	if m.bolt != boltUnlocked {
		t.Fatalf("bolt %s right after unlock", m.bolt)
	}
	m.step(start.Add(20*time.Second), 20*time.Second)
	if m.bolt != boltUnlocked && m.door == doorClosed {
		t.Errorf("bolt %s 20 s into a 30 s unlock", m.bolt)
	}
	m.step(start.Add(31*time.Second), 11*time.Second)
	if m.door == doorClosed && m.bolt != boltLocked {
		t.Errorf("bolt %s after the unlock ran out", m.bolt)
	}

	m.jam(start)
	unlock := schemas.Command{Name: schemas.CmdLockUnlock}
	if _, err := m.command(start, unlock); !errors.Is(err, errJammed) {
		t.Errorf("unlock while jammed: %v", err)
	}
	if evs := m.clear(start); len(evs) != 1 || m.bolt == boltJammed {
		t.Errorf("clear: %+v, bolt %s", evs, m.bolt)
	}
}

func TestAEDSelfTestsEveryNight(t *testing.T) {
	start := time.Date(2025, 11, 3, 12, 0, 0, 0, shanghai())
	m := newAED(newEnv(7, "ys-007"), start)
	if !m.ready() || m.selfTest != selfTestPass {
		t.Fatalf("new unit not ready: %+v", m)
	}
	if !m.selfTestAt.Before(start) || start.Sub(m.selfTestAt) > 24*time.Hour {
		t.Errorf("last self-test at %v, want last night", m.selfTestAt)
	}
	if life := m.padsExpire.Sub(start).Hours() / 24; life < 365 || life > 730 {
		t.Errorf("pads expire in %.0f days, want 1-2 years", life)
	}

	_, evs := stepFor(m, start, 72*time.Hour, 5*time.Minute)
	var tests []time.Time
	for _, e := range evs {
		if e.Type == schemas.EventSelfTest {
			at := time.UnixMilli(e.TS).In(shanghai())
			tests = append(tests, at)
			if at.Hour() < selfTestFromHour || at.Hour() >= selfTestFromHour+2 || e.Detail != selfTestPass {
				t.Errorf("self-test at %v: %q", at, e.Detail)
			}
		}
	}
	if len(tests) != 3 {
		t.Fatalf("%d self-tests in three days, want 3", len(tests))
	}
	if m.selfTestAt.UnixMilli() != tests[2].UnixMilli() {
		t.Errorf("self_test_at %v, want the last test %v", m.selfTestAt, tests[2])
	}

	// A failing unit is not ready until cleared; an open cabinet stays ready.
	now := start.Add(72 * time.Hour)
	evs = m.failSelfTest(now)
	if m.ready() || len(evs) != 2 || evs[1].Type != schemas.EventFaultRaised {
		t.Errorf("after a failed self-test: ready %v, events %+v", m.ready(), evs)
	}
	m.clear(now)
	m.setCabinet(now, true)
	if !m.ready() || !m.cabinetOpen {
		t.Errorf("cleared unit with cabinet open: ready %v", m.ready())
	}
}

// TestEveryPayloadDecodes drives every kind through two simulated days with
// random commands and faults and decodes every telemetry and event with the
// contract's decoders.
func TestEveryPayloadDecodes(t *testing.T) {
	seasons := []time.Time{
		time.Date(2025, 1, 18, 0, 0, 0, 0, shanghai()),
		time.Date(2025, 7, 18, 0, 0, 0, 0, shanghai()),
	}
	commands := []schemas.Command{
		{Name: schemas.CmdACSet, Args: map[string]any{"power": true, "mode": "cool", "setpoint_c": 26.0}},
		{Name: schemas.CmdACSet, Args: map[string]any{"mode": "dry", "fan": "low"}},
		{Name: schemas.CmdACSet, Args: map[string]any{"power": false}},
		{Name: schemas.CmdACSet, Args: map[string]any{"power": true, "mode": "heat", "setpoint_c": 18.0}},
		{Name: schemas.CmdLockUnlock, Args: map[string]any{"seconds": 120.0}},
		{Name: schemas.CmdLockMode, Args: map[string]any{"mode": "open"}},
		{Name: schemas.CmdLockMode, Args: map[string]any{"mode": "normal"}},
		{Name: schemas.CmdChargerSlot, Args: map[string]any{"slot": 2.0, "on": false}},
		{Name: schemas.CmdChargerSlot, Args: map[string]any{"slot": 2.0, "on": true}},
	}
	for _, k := range allKinds {
		for si, start := range seasons {
			t.Run(fmt.Sprintf("%s/%s", k, start.Month()), func(t *testing.T) {
				e := newEnv(int64(si), "ys-010")
				m := newModel(k, e, start)
				at := start
				var seq uint64
				for i := 0; i < 2*24*12; i++ {
					at = at.Add(5 * time.Minute)
					evs := m.step(at, 5*time.Minute)
					if i%17 == 0 {
						more, _ := m.command(at, commands[(i/17)%len(commands)])
						evs = append(evs, more...)
					}
					if i%97 == 0 {
						evs = append(evs, injectAny(m, at)...)
					}
					if i%131 == 0 {
						evs = append(evs, m.clear(at)...)
					}

					for _, ev := range evs {
						seq++
						ev.Seq = seq
						b, err := json.Marshal(ev)
						if err != nil {
							t.Fatal(err)
						}
						if _, err := schemas.DecodeEvent(b); err != nil {
							t.Fatalf("event %s: %v", b, err)
						}
					}
					seq++
					b, err := m.encode(schemas.Meta{TS: at.UnixMilli(), Seq: seq})
					if err != nil {
						t.Fatal(err)
					}
					tm, err := schemas.DecodeTelemetry(k, b)
					if err != nil {
						t.Fatalf("telemetry %s: %v", b, err)
					}
					if tm.TS != at.UnixMilli() || tm.Seq != seq || tm.State() == nil {
						t.Fatalf("decoded %+v from %s", tm, b)
					}
				}
			})
		}
	}
}

// injectAny raises the fault a model of its kind knows.
func injectAny(m model, at time.Time) []schemas.Event {
	switch m := m.(type) {
	case *acModel:
		return m.setFault(at, "F1")
	case *lockModel:
		return m.jam(at)
	case *chargerModel:
		evs, _ := m.overheat(at, 1)
		return evs
	case *aedModel:
		return append(m.setCabinet(at, true), m.failSelfTest(at)...)
	}
	return nil
}

func TestCommandAnswers(t *testing.T) {
	now := july
	exp := now.Add(time.Minute).UnixMilli()
	type step struct {
		payload string
		answer  bool
		ok      bool
		reboot  bool
	}
	cases := []struct {
		kind  schemas.Kind
		steps []step
	}{
		{schemas.KindAC, []step{
			{`{"id":"a1","name":"ac.set","args":{"setpoint_c":25},"expires_at":%d}`, true, true, false},
			{`{"id":"a2","name":"ac.set","args":{"setpoint_c":40},"expires_at":%d}`, true, false, false},
			{`{"id":"a3","name":"ac.set","args":{"mode":"turbo"},"expires_at":%d}`, true, false, false},
			{`{"id":"a4","name":"ac.set","args":{"power":"yes"},"expires_at":%d}`, true, false, false},
			{`{"id":"a5","name":"ac.set","args":{},"expires_at":%d}`, true, false, false},
			{`{"id":"a6","name":"lock.unlock","expires_at":%d}`, true, false, false},
			{`{"id":"a7","name":"device.reboot","expires_at":%d}`, true, true, true},
			{`{"id":"a8","name":"ac.set","args":{"power":true},"expires_at":1}`, false, false, false},
			{`{"name":"ac.set","args":{"power":true},"expires_at":%d}`, false, false, false},
			{`{"id":"a9 x","name":"ac.set","expires_at":%d}`, false, false, false},
			{`not json at all`, false, false, false},
		}},
		{schemas.KindLock, []step{
			{`{"id":"l1","name":"lock.unlock","args":{"seconds":30},"expires_at":%d}`, true, true, false},
			{`{"id":"l2","name":"lock.unlock","args":{"seconds":0},"expires_at":%d}`, true, false, false},
			{`{"id":"l3","name":"lock.mode","args":{"mode":"lockdown"},"expires_at":%d}`, true, true, false},
			{`{"id":"l4","name":"lock.unlock","expires_at":%d}`, true, false, false},
			{`{"id":"l5","name":"lock.mode","expires_at":%d}`, true, false, false},
		}},
		{schemas.KindCharger, []step{
			{`{"id":"c1","name":"charger.slot","args":{"slot":1,"on":false},"expires_at":%d}`,
				true, true, false},
			{`{"id":"c2","name":"charger.slot","args":{"slot":99,"on":true},"expires_at":%d}`,
				true, false, false},
			{`{"id":"c3","name":"charger.slot","args":{"slot":1.5,"on":true},"expires_at":%d}`,
				true, false, false},
			{`{"id":"c4","name":"charger.slot","args":{"slot":1},"expires_at":%d}`, true, false, false},
		}},
		{schemas.KindAED, []step{
			{`{"id":"e1","name":"lock.unlock","expires_at":%d}`, true, false, false},
			{`{"id":"e2","name":"device.reboot","expires_at":%d}`, true, true, true},
		}},
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			d := NewDevice(DeviceSpec{Station: "st-1", Device: "d-" + string(c.kind), Kind: c.kind},
				DeviceOptions{Now: frozen(now)})
			for _, s := range c.steps {
				payload := s.payload
				if strings.Contains(payload, "%d") {
					payload = fmt.Sprintf(payload, exp)
				}
				res, answer, _, reboot := d.execute(now, []byte(payload))
				if answer != s.answer || (answer && res.OK != s.ok) || reboot != s.reboot {
					t.Errorf("%s: answer %v ok %v reboot %v (%q), want %v %v %v", payload,
						answer, res.OK, reboot, res.Error, s.answer, s.ok, s.reboot)
				}
				if answer && !res.OK && res.Error == "" {
					t.Errorf("%s: refused without a reason", payload)
				}
				if answer {
					b, _ := json.Marshal(res)
					if _, err := schemas.DecodeCommandResult(b); err != nil {
						t.Errorf("result %s: %v", b, err)
					}
				}

				// The same id again: the same answer, not carried out again.
				if answer {
					again, answered, changed, reboot := d.execute(now, []byte(payload))
					if !answered || again != res || changed || reboot {
						t.Errorf("%s repeated: %+v changed %v reboot %v, want %+v unchanged",
							payload, again, changed, reboot, res)
					}
				}
			}
		})
	}
}

func TestDeviceForgetsOldCommandIDs(t *testing.T) {
	d := NewDevice(DeviceSpec{Station: "st-1", Device: "d-1", Kind: schemas.KindAC},
		DeviceOptions{Now: frozen(july)})
	exp := july.Add(time.Minute).UnixMilli()
	for i := range rememberedCmds + 10 {
		p := fmt.Sprintf(`{"id":"c%d","name":"ac.set","args":{"power":true},"expires_at":%d}`, i, exp)
		if _, answer, _, _ := d.execute(july, []byte(p)); !answer {
			t.Fatalf("command %d not answered", i)
		}
	}
	if n := len(d.answered); n != rememberedCmds || len(d.order) != rememberedCmds {
		t.Errorf("remembers %d ids (%d in order), want %d", n, len(d.order), rememberedCmds)
	}
	if _, ok := d.answered["c0"]; ok {
		t.Error("oldest id still remembered")
	}
	if _, ok := d.answered[fmt.Sprintf("c%d", rememberedCmds+9)]; !ok {
		t.Error("newest id forgotten")
	}
}

func TestClipErrorKeepsUTF8(t *testing.T) {
	long := ""
	for len(long) < 400 {
		long += "温度过高 "
	}
	got := clipError(long)
	if len(got) > maxErrorLen || !json.Valid([]byte(fmt.Sprintf("%q", got))) {
		t.Errorf("clipped to %d bytes: %q", len(got), got)
	}
	for i := 0; i < len(got); {
		r, size := utf8.DecodeRuneInString(got[i:])
		if r == 0xFFFD && size == 1 {
			t.Fatalf("broken UTF-8 at %d in %q", i, got)
		}
		i += size
	}
	if s := "short"; clipError(s) != s {
		t.Errorf("clipped a short error")
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
