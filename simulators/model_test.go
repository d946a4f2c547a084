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
	cl := newClimate(seed, shanghai(), station)
	return &env{
		rng:     rand.New(rand.NewPCG(uint64(seed), 1)),
		climate: cl,
		crowd:   newCrowd(seed, station, cl, nil),
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

// passiveC is where an idle room settles at t: outside plus what the sun,
// the equipment and the people inside put in, over the insulation.
func passiveC(m *acModel, t time.Time) float64 {
	people := float64(m.env.crowd.inside(t))
	return m.env.climate.outdoorC(t) + (equipmentW+m.solarW(t)+people*personW)/m.uaWPerK
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
		{"auto in winter", janMorning, schemas.ModeAuto, 19, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newAC(newEnv(1, "ys-001"), c.start)
			m.power, m.mode, m.setpointC, m.roomC = true, c.mode, c.setpointC, c.roomC
			at, _ := stepFor(m, c.start, time.Minute, physicsStep)
			pulling := m.powerW
			if pulling < 1200 {
				t.Errorf("%.0f W while far from the setpoint, want a hard pull", pulling)
			}

			// It reaches the setpoint within the hour and holds it.
			at, _ = stepFor(m, at, time.Hour, physicsStep)
			for range 12 {
				at, _ = stepFor(m, at, 10*time.Minute, physicsStep)
				if diff := m.roomC - c.setpointC; diff > 0.7 || diff < -0.7 {
					t.Fatalf("room %.1f °C at %s, want within 0.7 of %g", m.roomC,
						at.Format("15:04"), c.setpointC)
				}
			}
			if m.powerW >= pulling || m.powerW < 150 {
				t.Errorf("%.0f W holding the setpoint, want less than %.0f and at least 150",
					m.powerW, pulling)
			}

			// Off: the room goes back toward the weather.
			if _, err := m.command(at, schemas.Command{Name: schemas.CmdACSet,
				Args: map[string]any{"power": false}}); err != nil {
				t.Fatal(err)
			}
			held := m.roomC
			at, _ = stepFor(m, at, 3*time.Hour, physicsStep)
			passive := passiveC(m, at)
			if gap, was := abs(m.roomC-passive), abs(held-passive); gap > was*0.6 {
				t.Errorf("room %.1f °C three hours after switching off, idle room %.1f: "+
					"gap %.1f was %.1f", m.roomC, passive, gap, was)
			}
			if m.powerW > 5 {
				t.Errorf("%.0f W while off", m.powerW)
			}
		})
	}
}

// TestHotDayWarmsAnIdleRoom: with the unit off, a July room follows the
// day: cooler at dawn, hottest in the afternoon, above the air outside.
func TestHotDayWarmsAnIdleRoom(t *testing.T) {
	dawn := time.Date(2025, 7, 22, 5, 0, 0, 0, shanghai())
	m := newAC(newEnv(2, "ys-009"), dawn)
	m.power = false
	stepFor(m, dawn.Add(-6*time.Hour), 6*time.Hour, physicsStep) // settle with the unit off
	atDawn := m.roomC
	_, _ = stepFor(m, dawn, 10*time.Hour, physicsStep)
	if m.roomC < atDawn+4 {
		t.Errorf("an idle room went from %.1f °C at dawn to %.1f at 15:00, want it much warmer",
			atDawn, m.roomC)
	}
	if m.roomC < m.outdoorC || m.roomC < 32 {
		t.Errorf("idle room %.1f °C at 15:00 with %.1f outside, want hotter than outside",
			m.roomC, m.outdoorC)
	}
}

// TestBusyRoomTakesMorePower: the same unit holding the same setpoint
// draws more with people coming and going than in an empty station.
func TestBusyRoomTakesMorePower(t *testing.T) {
	noon := time.Date(2025, 7, 22, 11, 0, 0, 0, shanghai())
	draw := func(busy bool) float64 {
		e := newEnv(3, "ys-011")
		if !busy {
			e.crowd.scale = 0 // nobody comes
		}
		m := newAC(e, noon)
		m.power, m.mode, m.setpointC, m.roomC = true, schemas.ModeCool, 26, 26
		var sum float64
		at := noon
		for range 120 { // an hour in 30 s steps
			at, _ = stepFor(m, at, 30*time.Second, physicsStep)
			sum += m.powerW
		}
		return sum / 120
	}
	if m := newAC(newEnv(3, "ys-011"), noon); m.env.crowd.inside(noon.Add(30*time.Minute)) == 0 {
		t.Fatal("nobody in the station at lunch: pick another seed")
	}
	empty, busy := draw(false), draw(true)
	if busy < empty+20 {
		t.Errorf("%.0f W with the lunch crowd, %.0f W empty: people and the door should cost power",
			busy, empty)
	}
}

func TestACFaultStopsCooling(t *testing.T) {
	start := time.Date(2025, 7, 20, 13, 0, 0, 0, shanghai())
	m := newAC(newEnv(2, "ys-002"), start)
	m.power, m.mode, m.setpointC, m.roomC = true, schemas.ModeCool, 26, 26
	stepFor(m, start.Add(-time.Hour), time.Hour, physicsStep)
	evs := m.setFault(start, "E4")
	if len(evs) != 1 || evs[0].Type != schemas.EventFaultRaised || evs[0].Code != "E4" {
		t.Fatalf("events %+v", evs)
	}
	stepFor(m, start, 2*time.Hour, physicsStep)
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

func TestACTripClearsItself(t *testing.T) {
	start := time.Date(2025, 7, 25, 14, 0, 0, 0, shanghai())
	m := newAC(newEnv(4, "ys-004"), start)
	m.power, m.mode, m.setpointC = true, schemas.ModeCool, 16
	m.uaWPerK = 150            // a draughty room
	m.env.climate.offsetC += 6 // in a heat wave: the unit runs hard
	m.tripRate = 1             // and trips far more often than a real one, to be seen here
	var raised, cleared int
	at := start
	for range 24 * 2 {
		var evs []schemas.Event
		at, evs = stepFor(m, at, time.Hour, physicsStep)
		for _, e := range evs {
			switch {
			case e.Type == schemas.EventFaultRaised && e.Code == tripCode:
				raised++
			case e.Type == schemas.EventFaultCleared && e.Code == tripCode:
				cleared++
			}
		}
	}
	if raised == 0 || cleared < raised-1 {
		t.Errorf("two days flat out in a heat wave: %d trips raised, %d cleared", raised, cleared)
	}
}

func TestChargerChargesAlongACurve(t *testing.T) {
	start := time.Date(2025, 5, 1, 9, 0, 0, 0, shanghai())
	m := newCharger(newEnv(3, "ys-003"), start)
	s := &slot{battery: true, socPct: 10, tempC: 25}
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

	at, _ := stepFor(m, start, 90*time.Minute, physicsStep)
	if m.slots[0].tempC > resumeBelowC {
		t.Fatalf("slot still %.1f °C after 90 min cut off", m.slots[0].tempC)
	}
	evs, err = m.command(at, on)
	if err != nil || len(evs) != 1 || evs[0].Type != schemas.EventFaultCleared ||
		evs[0].Code != codeSlotOverheat {
		t.Errorf("reviving a cooled slot: %+v %v", evs, err)
	}
	if st := m.slots[0].state(); st == slotFault || st == slotOff {
		t.Errorf("slot state %s after revival", st)
	}
}

// TestChargerRunawayClimbs: a cell in thermal runaway heats itself; the
// cabinet cuts its bay at about 60 °C, it goes on climbing until it smokes,
// and the cabinet around it warms. Clear takes the battery away.
func TestChargerRunawayClimbs(t *testing.T) {
	start := time.Date(2025, 7, 21, 2, 0, 0, 0, shanghai())
	m := newCharger(newEnv(5, "ys-001"), start)
	if _, err := m.runaway(start, 3); err != nil {
		t.Fatal(err)
	}
	cabinet := m.cabinetC
	var evs []schemas.Event
	at := start
	prev := m.slots[2].tempC
	for range 40 { // 40 minutes
		var more []schemas.Event
		at, more = stepFor(m, at, time.Minute, physicsStep)
		evs = append(evs, more...)
		if now := m.slots[2].tempC; now < prev && now < runawayMaxC {
			t.Fatalf("runaway bay cooled from %.1f to %.1f °C at %s", prev, now, at.Format("15:04"))
		}
		prev = m.slots[2].tempC
	}
	if prev < 120 {
		t.Errorf("runaway bay at %.1f °C after 40 minutes, want past 120", prev)
	}
	var cut, smoke bool
	for _, e := range evs {
		cut = cut || (e.Type == schemas.EventFaultRaised && e.Slot == 3 && e.Code == codeRunaway)
		smoke = smoke || e.Type == schemas.EventSmoke
	}
	if !cut || !smoke || !m.smoke || m.slots[2].state() != slotFault {
		t.Errorf("events %+v, smoke %v, state %s: want the bay cut and smoke", evs, m.smoke,
			m.slots[2].state())
	}
	if m.cabinetC < cabinet+3 {
		t.Errorf("cabinet %.1f °C around a burning bay, was %.1f", m.cabinetC, cabinet)
	}
	b, _ := m.encode(schemas.Meta{})
	if _, err := schemas.DecodeTelemetry(schemas.KindCharger, b); err != nil {
		t.Errorf("telemetry in runaway: %v: %s", err, b)
	}

	evs = m.clear(at)
	if m.smoke || m.slots[2].runaway || m.slots[2].battery || len(evs) == 0 ||
		evs[len(evs)-1].Code != codeRunaway {
		t.Errorf("after clear: smoke %v, slot %+v, events %+v", m.smoke, m.slots[2], evs)
	}
}

// TestChargerMainsAndHeat: nothing charges without mains; a hot battery
// charges slower than a cool one.
func TestChargerMainsAndHeat(t *testing.T) {
	start := time.Date(2025, 5, 1, 9, 0, 0, 0, shanghai())
	m := newCharger(newEnv(6, "ys-004"), start)
	evs := m.setMains(start, false)
	if len(evs) != 1 || evs[0].Type != schemas.EventMainsLost {
		t.Fatalf("mains lost: %+v", evs)
	}
	s := &slot{battery: true, socPct: 30, tempC: 25}
	m.charge(s, time.Hour)
	if s.socPct != 30 {
		t.Errorf("charged to %.1f%% without mains", s.socPct)
	}
	b, _ := m.encode(schemas.Meta{})
	tm, err := schemas.DecodeTelemetry(schemas.KindCharger, b)
	if err != nil || tm.Charger.Mains {
		t.Fatalf("telemetry without mains: %v %s", err, b)
	}
	for _, sl := range tm.Charger.Slots {
		if sl.State == slotCharging {
			t.Errorf("slot %d charging without mains", sl.Slot)
		}
	}
	if evs := m.setMains(start, true); len(evs) != 1 || evs[0].Type != schemas.EventMainsRestored {
		t.Fatalf("mains restored: %+v", evs)
	}

	cool := &slot{battery: true, socPct: 20, tempC: 30}
	hot := &slot{battery: true, socPct: 20, tempC: 52}
	cold := &slot{battery: true, socPct: 20, tempC: -3}
	for _, sl := range []*slot{cool, hot, cold} {
		m.charge(sl, time.Hour)
	}
	if !(cool.socPct > hot.socPct && hot.socPct > cold.socPct && cold.socPct == 20) {
		t.Errorf("an hour from 20%%: %.1f%% at 30 °C, %.1f%% at 52 °C, %.1f%% at -3 °C; want "+
			"the hot one slower and the frozen one not at all", cool.socPct, hot.socPct, cold.socPct)
	}
}

// visitDay runs a terminal through a day with no platform answering:
// every visitor is decided from the allow-list after the request. It
// returns the events and samples the door each minute.
func visitDay(t *testing.T, m *lockModel, start time.Time) (
	evs []schemas.Event, open, unlockedShut int) {
	t.Helper()
	at := start
	for i := 0; i < 24*60*12; i++ {
		at = at.Add(physicsStep)
		evs = append(evs, m.step(at, physicsStep)...)
		for _, a := range m.takeAttempts() {
			b, _ := json.Marshal(a.req)
			if _, err := schemas.DecodeAccessRequest(b); err != nil {
				t.Fatalf("access request %s: %v", b, err)
			}
			evs = append(evs, m.decide(at, a, false, false, 0, "")...)
		}
		if i%12 != 0 {
			continue
		}
		if m.door == doorOpen {
			open++
		}
		if m.door == doorClosed && m.bolt != boltLocked && m.mode == lockNormal &&
			!at.Before(m.unlockUntil) {
			unlockedShut++
		}
		if n := len(m.inside); n > maxOccupancy {
			t.Fatalf("occupancy %d", n)
		}
	}
	return evs, open, unlockedShut
}

func TestLockThroughADay(t *testing.T) {
	start := time.Date(2025, 9, 10, 0, 0, 0, 0, shanghai())
	m := newLock(newEnv(5, "ys-005"), start)
	battery := m.batteryPct
	evs, open, unlockedShut := visitDay(t, m, start)
	granted, denied := 0, 0
	for _, e := range evs {
		switch e.Type {
		case schemas.EventAccessGranted:
			granted++
			if e.Detail != detailOffline {
				t.Errorf("granted with detail %q, want the allow-list", e.Detail)
			}
		case schemas.EventAccessDenied:
			denied++
		}
	}
	t.Logf("a day: %d granted, %d denied, door seen open in %d of 1440 minutes", granted,
		denied, open)
	if share := float64(open) / 1440; share > 0.06 {
		t.Errorf("door open in %.0f%% of samples, want mostly closed", share*100)
	}
	if unlockedShut != 0 {
		t.Errorf("bolt unlocked behind a closed door %d times in normal mode", unlockedShut)
	}
	if granted < 25 || granted > 110 {
		t.Errorf("%d visitors let in in a day, want 25-110", granted)
	}
	if denied > granted/4 {
		t.Errorf("%d turned away and %d let in: strangers should be few", denied, granted)
	}
	if drop := battery - m.batteryPct; drop < 0.35 || drop > 0.7 {
		t.Errorf("battery dropped %.2f%% in a day, want about %.1f", drop, lockDrainPctPerDay)
	}

	// Lockdown: nobody comes in, and a remote unlock is refused.
	at := start.Add(24 * time.Hour)
	if _, err := m.command(at, schemas.Command{Name: schemas.CmdLockMode,
		Args: map[string]any{"mode": lockLockdown}}); err != nil {
		t.Fatal(err)
	}
	at, evs = stepFor(m, at, 6*time.Hour, physicsStep)
	for _, e := range evs {
		if e.Type == schemas.EventAccessGranted || len(m.attempts) > 0 {
			t.Fatalf("let in or asked the platform in lockdown: %+v", e)
		}
	}
	unlock := schemas.Command{Name: schemas.CmdLockUnlock}
	if _, err := m.command(at, unlock); !errors.Is(err, errLockdown) {
		t.Errorf("unlock in lockdown: %v", err)
	}
}

// TestLockCrowdFollowsTheDay: more visitors at the shift changes and meal
// times than in mid-morning or at night, and more on a hot day.
func TestLockCrowdFollowsTheDay(t *testing.T) {
	perHour := make([]float64, 24)
	days := 0
	for seed := int64(1); seed <= 4; seed++ {
		c := newCrowd(seed, "ys-012", newClimate(seed, shanghai(), "ys-012"), nil)
		for day := 1; day <= 20; day++ {
			from := time.Date(2025, 10, day, 0, 0, 0, 0, shanghai())
			for _, v := range c.arrivals(from, from.Add(24*time.Hour)) {
				perHour[v.at.In(shanghai()).Hour()]++
			}
			days++
		}
	}
	for h := range perHour {
		perHour[h] /= float64(days)
	}
	if !(perHour[5] > 2*perHour[9] && perHour[12] > 2*perHour[9] && perHour[9] > 2*perHour[2]) {
		t.Errorf("visitors per hour %.1f at 05:00, %.1f at 12:00, %.1f at 09:00, %.1f at 02:00; "+
			"want dawn and lunch busiest, night quietest", perHour[5], perHour[12], perHour[9],
			perHour[2])
	}

	mild := ratePerHour(12, 24)
	if hot := ratePerHour(12, 38); hot < mild*1.5 {
		t.Errorf("%.1f visitors an hour at 38 °C, %.1f at 24 °C: heat should bring more", hot, mild)
	}
	if cold := ratePerHour(12, -3); cold < mild*1.3 {
		t.Errorf("%.1f visitors an hour at -3 °C, %.1f at 24 °C: cold should bring more", cold, mild)
	}

	// The same station's crowd is the same for every device of a seed.
	a := newCrowd(3, "ys-001", newClimate(3, shanghai(), "ys-001"), nil)
	b := newCrowd(3, "ys-001", newClimate(3, shanghai(), "ys-001"), nil)
	day := time.Date(2025, 7, 1, 0, 0, 0, 0, shanghai())
	va, vb := a.arrivals(day, day.Add(24*time.Hour)), b.arrivals(day, day.Add(24*time.Hour))
	if len(va) == 0 || len(va) != len(vb) || va[0] != vb[0] ||
		a.token(va[0].worker) != b.token(vb[0].worker) {
		t.Errorf("two devices of one station see different crowds: %d and %d visits", len(va), len(vb))
	}
}

// TestLockAnswersAndAccidents: the platform's answer wins over the
// allow-list and is remembered; a forced door and a jam are reported.
func TestLockAnswersAndAccidents(t *testing.T) {
	start := time.Date(2025, 9, 10, 11, 0, 0, 0, shanghai())
	m := newLock(newEnv(8, "ys-008"), start)
	v := visit{at: start, stay: 20 * time.Minute, worker: 1, method: schemas.MethodNFC}
	a := attempt{visit: v, req: schemas.AccessRequest{ID: "r1", Method: v.method,
		Token: m.env.crowd.token(v.worker)}}

	evs := m.decide(start, a, true, false, 0, "revoked")
	if len(evs) == 0 || evs[0].Type != schemas.EventAccessDenied || evs[0].Method != v.method ||
		!strings.Contains(evs[0].Detail, "revoked") || m.door != doorClosed {
		t.Fatalf("a platform refusal: %+v, door %s", evs, m.door)
	}
	// The platform goes quiet: the terminal remembers the refusal.
	if evs := m.decide(start, a, false, false, 0, ""); evs[0].Type != schemas.EventAccessDenied {
		t.Errorf("offline after a refusal: %+v, want denied from the cache", evs)
	}
	// A stranger is refused by the allow-list; an enrolled worker let in.
	stranger := a
	stranger.visit.worker = m.env.crowd.enrolled + 3
	stranger.req.Token = m.env.crowd.token(stranger.visit.worker)
	if evs := m.decide(start, stranger, false, false, 0, ""); evs[0].Type != schemas.EventAccessDenied {
		t.Errorf("a stranger offline: %+v", evs)
	}
	worker := a
	worker.visit.worker = 2
	worker.req.Token = m.env.crowd.token(2)
	evs = m.decide(start, worker, true, true, 12, "")
	if evs[0].Type != schemas.EventAccessGranted || m.door != doorOpen || m.bolt != boltUnlocked ||
		len(m.inside) != 1 {
		t.Errorf("a grant: %+v, door %s, bolt %s, inside %d", evs, m.door, m.bolt, len(m.inside))
	}
	m.step(start.Add(10*time.Second), 10*time.Second)
	if m.bolt != boltUnlocked {
		t.Errorf("bolt %s 10 s into a 12 s unlock", m.bolt)
	}
	m.step(start.Add(30*time.Second), 20*time.Second)
	if m.door != doorClosed || m.bolt != boltLocked {
		t.Errorf("30 s later: door %s, bolt %s", m.door, m.bolt)
	}

	// Three refusals in a row are reported once.
	at := start.Add(time.Minute)
	fresh := newLock(newEnv(8, "ys-008"), start)
	var bursts int
	for i := range 5 {
		when := at.Add(time.Duration(i) * time.Second)
		for _, e := range fresh.decide(when, stranger, false, false, 0, "") {
			if e.Type == schemas.EventTooManyFailures {
				bursts++
			}
		}
	}
	if bursts != 1 {
		t.Errorf("%d too_many_failures for five refusals in a row, want 1", bursts)
	}

	evs = m.force(at)
	if len(evs) != 1 || evs[0].Type != schemas.EventDoorForced || m.door != doorOpen {
		t.Errorf("forced: %+v, door %s", evs, m.door)
	}
	at, _ = stepFor(m, at, time.Minute, physicsStep)
	if m.door != doorClosed {
		t.Errorf("door %s a minute after it was forced", m.door)
	}

	// A door propped open past the platform's five minutes is reported
	// held once; one open for three minutes is not.
	count := func(evs []schemas.Event) (held int) {
		for _, e := range evs {
			if e.Type == schemas.EventDoorHeld {
				held++
			}
		}
		return held
	}
	m.openDoor(at, 3*time.Minute)
	at, evs = stepFor(m, at, 4*time.Minute, physicsStep)
	if held := count(evs); held != 0 {
		t.Errorf("%d door_held events for a door open three minutes, want none", held)
	}
	m.openDoor(at, 6*time.Minute)
	_, evs = stepFor(m, at, 7*time.Minute, physicsStep)
	if held := count(evs); held != 1 {
		t.Errorf("%d door_held events for a door open six minutes, want 1", held)
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
	if m.bolt != boltUnlocked {
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
	if w := m.nextWake(); w.Sub(start) > 24*time.Hour || !w.After(start) {
		t.Errorf("next wake %v, want tonight's self-test", w)
	}

	_, evs := stepFor(m, start, 72*time.Hour, physicsStep)
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

// TestAEDBatteryAndPads: a flat battery, then pads past their date, fail
// the nightly self-test with a fault saying which; a new battery clears it.
func TestAEDBatteryAndPads(t *testing.T) {
	start := time.Date(2025, 11, 3, 12, 0, 0, 0, shanghai())
	m := newAED(newEnv(9, "ys-002"), start)
	m.setBattery(12)
	at, evs := stepFor(m, start, 24*time.Hour, physicsStep)
	if code := raisedCode(evs); code != codeBatteryLow || m.ready() || m.selfTest != selfTestFail {
		t.Errorf("flat battery: raised %q, ready %v, self-test %s", code, m.ready(), m.selfTest)
	}

	m.setBattery(95)
	m.setPadsExpire(at.Add(-time.Hour))
	at, evs = stepFor(m, at, 24*time.Hour, physicsStep)
	if code := raisedCode(evs); code != codePadsExpired || m.ready() {
		t.Errorf("old pads: raised %q, events %+v, ready %v", code, evs, m.ready())
	}
	b, _ := m.encode(schemas.Meta{})
	if _, err := schemas.DecodeTelemetry(schemas.KindAED, b); err != nil {
		t.Errorf("telemetry: %v: %s", err, b)
	}

	m.setPadsExpire(at.AddDate(2, 0, 0))
	_, evs = stepFor(m, at, 24*time.Hour, physicsStep)
	cleared := false
	for _, e := range evs {
		cleared = cleared || (e.Type == schemas.EventFaultCleared && e.Code == codePadsExpired)
	}
	if !cleared || !m.ready() {
		t.Errorf("new pads: events %+v, ready %v", evs, m.ready())
	}
}

// raisedCode is the code of the last fault raised among evs.
func raisedCode(evs []schemas.Event) string {
	code := ""
	for _, e := range evs {
		if e.Type == schemas.EventFaultRaised {
			code = e.Code
		}
	}
	return code
}

// TestPhysicsIsTheSameWhateverTheReportTimes: two devices of one seed
// and start, one stepped at odd report times and one at once, are in the
// same state at the same grid time.
func TestPhysicsIsTheSameWhateverTheReportTimes(t *testing.T) {
	start := time.Date(2025, 7, 20, 4, 0, 0, 0, shanghai())
	for _, k := range allKinds {
		s := DeviceSpec{Station: "ys-001", Device: "ys-001-" + string(k), Kind: k}
		a := newDevice(s, DeviceOptions{Seed: 11, Now: frozen(start)}, start)
		b := newDevice(s, DeviceOptions{Seed: 11, Now: frozen(start)}, start)
		end := start.Add(3 * time.Hour)
		a.mu.Lock()
		for at := start; at.Before(end); at = at.Add(7*time.Second + 300*time.Millisecond) {
			a.advance(at)
		}
		a.advance(end)
		a.mu.Unlock()
		b.mu.Lock()
		b.advance(end)
		b.mu.Unlock()

		pa, _ := a.model.encode(schemas.Meta{TS: 1})
		pb, _ := b.model.encode(schemas.Meta{TS: 1})
		if string(pa) != string(pb) {
			t.Errorf("%s: stepped in small pieces\n%s\nat once\n%s", k, pa, pb)
		}
		if len(a.pending) != len(b.pending) {
			t.Errorf("%s: %d events in small pieces, %d at once", k, len(a.pending), len(b.pending))
		}
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
					if lm, ok := m.(*lockModel); ok {
						for j, a := range lm.takeAttempts() {
							evs = append(evs, lm.decide(at, a, j%2 == 0, i%3 == 0, j, "no")...)
						}
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

// injectAny raises the faults a model of its kind knows.
func injectAny(m model, at time.Time) []schemas.Event {
	switch m := m.(type) {
	case *acModel:
		return m.setFault(at, "F1")
	case *lockModel:
		return append(m.jam(at), m.force(at)...)
	case *chargerModel:
		evs, _ := m.overheat(at, 1)
		more, _ := m.runaway(at, 2)
		return append(append(evs, more...), m.setMains(at, false)...)
	case *aedModel:
		m.setBattery(10)
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
