package simulators

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/waystation/waystation/schemas"
)

// countySpecs returns the device specs of the first n stations of a
// simulated county.
func countySpecs(n int) []DeviceSpec {
	var specs []DeviceSpec
	for _, st := range County(n, 1) {
		for _, d := range st.Devices {
			specs = append(specs, DeviceSpec{Station: st.ID, Device: d.ID, Kind: d.Kind,
				Secret: "s-" + d.ID})
		}
	}
	return specs
}

func TestShippedScenariosParseAndPlan(t *testing.T) {
	names := Scenarios()
	for _, want := range []string{"bad-night", "hot-july-day", "winter-morning"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("scenario %s not shipped: %v", want, names)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			sc, err := LoadScenario(name)
			if err != nil {
				t.Fatal(err)
			}
			if sc.Name != name || sc.Description == "" || sc.Start.IsZero() || len(sc.Events) == 0 {
				t.Errorf("scenario %+v", sc)
			}
			f, err := NewFleet(FleetOptions{Devices: countySpecs(12), Scenario: sc,
				Clock: NewClock(sc.Start, 1)})
			if err != nil {
				t.Fatalf("against 12 stations: %v", err)
			}
			for _, st := range f.steps {
				if st.at.Before(sc.Start) || st.at.Sub(sc.Start) > 24*time.Hour {
					t.Errorf("line %d at %v, start %v", st.event.Line, st.at, sc.Start)
				}
			}
		})
	}

	// The bad night: several faults from 01:00 to 05:00, a station without
	// power, an AED cabinet opened, a charger slot running away.
	sc, _ := LoadScenario("bad-night")
	f, err := NewFleet(FleetOptions{Devices: countySpecs(9), Scenario: sc,
		Clock: NewClock(sc.Start, 1)})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, st := range f.steps {
		h := st.at.In(shanghai()).Hour()
		if h < 1 || h >= 5 {
			if st.action != ActionRecover {
				t.Errorf("%s at %v, outside 01:00-05:00", st.action, st.at)
			}
			continue
		}
		seen[st.action] += len(st.devices)
	}
	if seen[ActionPowerLoss] < 2 || seen[ActionCabinetOpen] != 1 || seen[ActionThermalRunaway] != 1 ||
		seen[ActionFault]+seen[ActionJam]+seen[ActionSelfTestFail] < 3 {
		t.Errorf("bad night does %v", seen)
	}
}

// TestScenarioResumed: a fleet built later than its scenario's start (a
// run resumed on stored data) keeps the scenario's times and leaves out
// the steps already past.
func TestScenarioResumed(t *testing.T) {
	sc, err := LoadScenario("bad-night")
	if err != nil {
		t.Fatal(err)
	}
	whole, err := NewFleet(FleetOptions{Devices: countySpecs(9), Scenario: sc,
		Clock: NewClock(sc.Start, 1)})
	if err != nil {
		t.Fatal(err)
	}
	resumeAt := whole.steps[len(whole.steps)/2].at
	resumed, err := NewFleet(FleetOptions{Devices: countySpecs(9), Scenario: sc,
		ScenarioStart: sc.Start, Clock: NewClock(resumeAt, 1)})
	if err != nil {
		t.Fatalf("resumed halfway: %v", err)
	}
	var want []time.Time
	for _, st := range whole.steps {
		if !st.at.Before(resumed.born) {
			want = append(want, st.at)
		}
	}
	var got []time.Time
	for _, st := range resumed.steps {
		if st.at.After(resumed.born) {
			got = append(got, st.at)
		}
	}
	if len(want) == 0 || len(want) == len(whole.steps) || !slices.Equal(got, want) {
		t.Fatalf("resumed at %v: steps %v, want %v", resumed.born, got, want)
	}
}

// TestScenarioStillHeld: of the steps an earlier run played, a resumed
// run plays again at its start what they left in force, device by device.
func TestScenarioStillHeld(t *testing.T) {
	from := time.Date(2025, 7, 22, 12, 0, 0, 0, time.UTC)
	ac, lock, chg, aed := &Device{}, &Device{}, &Device{}, &Device{}
	step := func(ago time.Duration, action string, d *Device, ev ScenarioEvent) scenarioStep {
		ev.Line = int(ago / time.Minute)
		return scenarioStep{at: from.Add(-ago), event: ev, action: action, devices: []*Device{d}}
	}
	past := []scenarioStep{
		step(90*time.Minute, ActionFault, ac, ScenarioEvent{Code: "E1"}),
		step(80*time.Minute, ActionRecover, ac, ScenarioEvent{}),
		step(70*time.Minute, ActionFault, ac, ScenarioEvent{Code: "E2"}),                 // held
		step(60*time.Minute, ActionBattery, lock, ScenarioEvent{Pct: 50}),                // replaced
		step(55*time.Minute, ActionForceDoor, lock, ScenarioEvent{}),                     // momentary
		step(50*time.Minute, ActionJam, lock, ScenarioEvent{}),                           // held
		step(45*time.Minute, ActionBattery, lock, ScenarioEvent{Pct: 20}),                // held
		step(40*time.Minute, ActionMainsLoss, chg, ScenarioEvent{}),                      // restored
		step(35*time.Minute, ActionMainsRestore, chg, ScenarioEvent{}),                   // -
		step(30*time.Minute, ActionMainsLoss, chg, ScenarioEvent{}),                      // held
		step(25*time.Minute, ActionLinkDrop, aed, ScenarioEvent{For: 10 * time.Minute}),  // over
		step(20*time.Minute, ActionPowerLoss, aed, ScenarioEvent{For: 30 * time.Minute}), // 10 min left
		step(15*time.Minute, ActionCabinetOpen, aed, ScenarioEvent{}),                    // held
	}
	type got struct {
		line   int
		action string
		d      *Device
		left   time.Duration
	}
	var out []got
	for _, st := range stillHeld(past, from) {
		if !st.at.Equal(from) || len(st.devices) != 1 {
			t.Fatalf("step %+v not at the resume, for one device", st)
		}
		left := time.Duration(0)
		if st.action == ActionPowerLoss {
			left = st.event.For
		}
		out = append(out, got{st.event.Line, st.action, st.devices[0], left})
	}
	want := []got{
		{70, ActionFault, ac, 0},
		{50, ActionJam, lock, 0}, {45, ActionBattery, lock, 0},
		{30, ActionMainsLoss, chg, 0},
		{20, ActionPowerLoss, aed, 10 * time.Minute}, {15, ActionCabinetOpen, aed, 0},
	}
	if !slices.Equal(out, want) {
		t.Fatalf("held %+v\nwant %+v", out, want)
	}
}

func TestBadScenariosNameTheLine(t *testing.T) {
	cases := []struct {
		name, yaml string
		line       int
		want       string
	}{
		{"not yaml", "events: [\n  - at: 01:00\n  oops", 0, ""},
		{"not a mapping", "- 1\n- 2\n", 1, "want a mapping"},
		{"no events", "name: x\n", 1, "no events"},
		{"empty events", "name: x\nevents: []\n", 2, "empty"},
		{"unknown key", "name: x\nspeed: 3\nevents:\n  - {at: '+1m', device: a-1, do: jam}\n",
			2, `unknown key "speed"`},
		{"unknown action", "events:\n  - at: '+1m'\n    device: a-1\n    do: explode\n", 4,
			`unknown action`},
		{"bad time", "events:\n  - at: '25:00'\n    device: a-1\n    do: jam\n", 2, `at "25:00"`},
		{"bad offset", "events:\n  - at: '+soon'\n    device: a-1\n    do: jam\n", 2, "offset"},
		{"no target", "events:\n  - at: '+1m'\n    do: jam\n", 2, "no target"},
		{"two targets", "events:\n  - at: '+1m'\n    device: a-1\n    station: a\n    do: jam\n", 2,
			"not both"},
		{"bad device id", "events:\n  - at: '+1m'\n    device: A_1\n    do: jam\n", 3, "device"},
		{"missing arg", "events:\n  - at: '+1m'\n    device: a-1\n    do: power_loss\n", 2,
			"power_loss needs for"},
		{"stray arg", "events:\n  - at: '+1m'\n    device: a-1\n    do: jam\n    slot: 2\n", 2,
			"jam takes no slot"},
		{"bad slot", "events:\n  - at: '+1m'\n    device: a-1\n    do: overheat\n    slot: 0\n", 5,
			"slot 0"},
		{"bad duration", "events:\n  - at: '+1m'\n    device: a-1\n    do: link_drop\n    for: -4m\n",
			5, "for"},
		{"bad pct", "events:\n  - at: '+1m'\n    device: a-1\n    do: battery\n    pct: 140\n", 5,
			"pct 140"},
		{"bad date", "events:\n  - at: '+1m'\n    device: a-1\n    do: pads_expire\n" +
			"    date: 2025-02-30\n", 5, "date"},
		{"kind cannot", "events:\n  - at: '+1m'\n    station: a\n    kind: ac\n    do: jam\n", 2,
			"a ac cannot jam"},
		{"day without clock", "events:\n  - at: '+1m'\n    day: 2\n    device: a-1\n    do: jam\n", 2,
			"day goes with"},
		{"twice", "name: a\nname: b\nevents:\n  - {at: '+1m', device: a-1, do: jam}\n", 2,
			"given twice"},
		{"bad start", "start: tomorrow\nevents:\n  - {at: '+1m', device: a-1, do: jam}\n", 1,
			"start"},
		{"big weather", "weather_offset_c: 40\nevents:\n  - {at: '+1m', device: a-1, do: jam}\n", 1,
			"weather_offset_c"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseScenario("x.yaml", []byte(c.yaml))
			var se *ScenarioError
			if !errors.As(err, &se) || !errors.Is(err, ErrScenario) {
				t.Fatalf("error %v, want a *ScenarioError", err)
			}
			if c.line == 0 {
				if se.Problems[0].Line == 0 {
					t.Errorf("%v: no line", err)
				}
				return
			}
			for _, p := range se.Problems {
				if p.Line == c.line && strings.Contains(p.Reason, c.want) {
					if !strings.Contains(err.Error(), fmt.Sprintf("x.yaml:%d: ", c.line)) {
						t.Errorf("message %q does not start with the file and line", err)
					}
					return
				}
			}
			t.Errorf("problems %+v, want %q on line %d", se.Problems, c.want, c.line)
		})
	}

	// Every problem of a file is reported at once.
	_, err := ParseScenario("x.yaml", []byte("events:\n  - at: nope\n    device: a-1\n    do: jam\n"+
		"  - at: '+1m'\n    device: a-2\n    do: explode\n"))
	var se *ScenarioError
	if !errors.As(err, &se) || len(se.Problems) != 2 || se.Problems[0].Line != 2 ||
		se.Problems[1].Line != 7 {
		t.Errorf("two bad events: %v", err)
	}
}

func TestScenarioAgainstTheWrongFleet(t *testing.T) {
	sc, err := ParseScenario("x.yaml", []byte(`events:
  - at: "+10m"
    device: ys-009-ac
    do: fault
    code: E4
  - at: "+10m"
    device: ys-001-lock
    do: cabinet_open
  - at: "+10m"
    station: ys-002
    do: thermal_runaway
    slot: 1
  - at: "+10m"
    device: ys-001-chg
    do: overheat
    slot: 40
  - at: "2020-01-01 00:00"
    device: ys-001-ac
    do: recover
  - at: "+10m"
    station: ys-003
    do: recover
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewFleet(FleetOptions{Devices: countySpecs(2), Scenario: sc})
	var se *ScenarioError
	if !errors.As(err, &se) {
		t.Fatalf("error %v, want a *ScenarioError", err)
	}
	want := map[int]string{2: "no device ys-009-ac", 6: "cannot cabinet_open",
		9: "no device at station ys-002 can thermal_runaway", 13: "not 40", 17: "before the start",
		20: "no station ys-003"}
	for _, p := range se.Problems {
		if !strings.Contains(p.Reason, want[p.Line]) || want[p.Line] == "" {
			t.Errorf("line %d: %q, want %q", p.Line, p.Reason, want[p.Line])
		}
		delete(want, p.Line)
	}
	if len(want) > 0 {
		t.Errorf("not reported: %v", want)
	}
}

func TestLoadScenarioFromAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mine.yaml")
	if err := os.WriteFile(path, []byte("events:\n  - {at: '04:30', day: 2, device: a-1, do: jam}\n"),
		0o600); err != nil {
		t.Fatal(err)
	}
	sc, err := LoadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 3, 1, 5, 0, 0, 0, shanghai())
	if got, want := sc.Events[0].when(start, shanghai()), time.Date(2025, 3, 3, 4, 30, 0, 0,
		shanghai()); !got.Equal(want) {
		t.Errorf("04:30 on day 2 after 05:00 on 1 March: %v, want %v", got, want)
	}
	if _, err := LoadScenario("no-such-scenario"); err == nil ||
		!strings.Contains(err.Error(), "bad-night") {
		t.Errorf("a missing scenario: %v, want the shipped ones named", err)
	}
}

// TestScenarioTimingUnderAcceleratedTime plays a scenario at 1800 times
// the wall clock: each action happens at its simulated time (never early,
// and within a fraction of a wall second), its events carry that time,
// and a power cut lasts its simulated duration.
func TestScenarioTimingUnderAcceleratedTime(t *testing.T) {
	b := startBroker(t)
	w := watchLive(t, b)
	sc, err := ParseScenario("t.yaml", []byte(`events:
  - {at: "+10m", device: st-1-ac, do: fault, code: E4}
  - {at: "+20m", device: st-1-aed, do: cabinet_open}
  - {at: "+30m", station: st-1, kind: lock, do: power_loss, for: 15m}
  - {at: "+40m", station: st-1, do: recover}
`))
	if err != nil {
		t.Fatal(err)
	}
	specs := kindFleet()
	for i := range specs {
		specs[i].Interval = 5 * time.Minute
	}
	start := time.Date(2025, 7, 21, 1, 0, 0, 0, shanghai())
	clock := NewClock(start, 1800)
	var mu sync.Mutex
	var reports []ScenarioReport
	var late []string
	wallStart := time.Now()
	f, err := NewFleet(FleetOptions{Broker: b.url, Devices: specs, Seed: 1, Clock: clock, Scenario: sc,
		OnScenario: func(r ScenarioReport) {
			now, wall := clock.Now(), time.Since(wallStart)
			mu.Lock()
			defer mu.Unlock()
			reports = append(reports, r)
			due := clock.Wall(r.At.Sub(start))
			if now.Before(r.At) || wall > due+700*time.Millisecond {
				late = append(late, fmt.Sprintf("%s on %s: due %v, ran at %v (clock %v)", r.Action,
					r.Device, due, wall, now.Sub(start)))
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	start = f.Start()
	runFleet(t, f)

	eventually(t, 10*time.Second, "every action carried out", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reports) == 3+len(specs)
	})
	mu.Lock()
	for _, r := range reports {
		if r.Err != nil {
			t.Errorf("%s on %s: %v", r.Action, r.Device, r.Err)
		}
	}
	for _, l := range late {
		t.Error(l)
	}
	mu.Unlock()

	stamped := func(device, typ, code string, at time.Time) {
		t.Helper()
		for _, e := range w.events(device) {
			if e.Type == typ && e.Code == code {
				if got := time.UnixMilli(e.TS); e.TS != at.UnixMilli() {
					t.Errorf("%s %s stamped %v, want %v", device, typ, got, at)
				}
				return
			}
		}
		t.Errorf("%s: no %s event", device, typ)
	}
	eventually(t, 5*time.Second, "the cleared fault", func() bool {
		for _, e := range w.events("st-1-ac") {
			if e.Type == schemas.EventFaultCleared {
				return true
			}
		}
		return false
	})
	stamped("st-1-ac", schemas.EventFaultRaised, "E4", start.Add(10*time.Minute))
	stamped("st-1-aed", schemas.EventCabinetOpened, "", start.Add(20*time.Minute))
	stamped("st-1-ac", schemas.EventFaultCleared, "E4", start.Add(40*time.Minute))

	// The lock was dark for 15 simulated minutes: its will, then a boot.
	eventually(t, 5*time.Second, "the lock booted after its power cut", func() bool {
		boots := 0
		for _, e := range w.events("st-1-lock") {
			if e.Type == schemas.EventBoot {
				boots++
			}
		}
		return boots == 2
	})
	if sts := w.statuses("st-1-lock"); sts[1].Online {
		t.Errorf("lock statuses %+v, want the will second", sts)
	}
	var boots []time.Time
	for _, e := range w.events("st-1-lock") {
		if e.Type == schemas.EventBoot {
			boots = append(boots, time.UnixMilli(e.TS))
		}
	}
	cut := start.Add(30 * time.Minute)
	if len(boots) != 2 || boots[1].Sub(cut) < 15*time.Minute || boots[1].Sub(cut) > 20*time.Minute {
		t.Errorf("boots at %v; the power went at %v for 15 minutes", boots, cut)
	}
}
