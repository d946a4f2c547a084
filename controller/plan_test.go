package controller

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// planIssuer is a small command sender for the planner's tests: it checks
// and records each request, and when it has a bus publishes the command on
// the device's cmd topic as the contract says.
type planIssuer struct {
	reg *devices.Registry
	bus Bus
	now func() time.Time

	mu   sync.Mutex
	sent []issued
	n    int
	fail error // returned instead of sending, when set
}

// issued is one recorded command.
type issued struct {
	CommandRequest
	ID string
	At time.Time // the planner's clock when it was issued
}

func (c *planIssuer) IssueCommand(req CommandRequest) (string, error) {
	d, err := c.reg.Device(req.Device)
	if err != nil {
		return "", err
	}
	cmd := schemas.Command{Name: req.Name, Args: req.Args}
	c.mu.Lock()
	if c.fail != nil {
		c.mu.Unlock()
		return "", c.fail
	}
	c.n++
	cmd.ID = fmt.Sprintf("cmd-%d", c.n)
	at := c.now()
	cmd.ExpiresAt = at.Add(req.TTL).UnixMilli()
	c.sent = append(c.sent, issued{CommandRequest: req, ID: cmd.ID, At: at})
	c.mu.Unlock()
	if err := cmd.Validate(); err != nil {
		return "", err
	}
	if c.bus != nil {
		buf, err := json.Marshal(cmd)
		if err != nil {
			return "", err
		}
		if err := c.bus.Publish(schemas.DeviceTopic(d.Station, d.ID, schemas.ChannelCmd), 1, false,
			buf); err != nil {
			return "", err
		}
	}
	return cmd.ID, nil
}

// starts and stops return the recorded power-on and power-off commands.
func (c *planIssuer) commands(power bool) []issued {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []issued
	for _, s := range c.sent {
		if on, _ := s.Args["power"].(bool); on == power {
			out = append(out, s)
		}
	}
	return out
}

// planNotes records notices.
type planNotes struct {
	mu    sync.Mutex
	notes []Notice
}

func (n *planNotes) Notify(x Notice) {
	n.mu.Lock()
	n.notes = append(n.notes, x)
	n.mu.Unlock()
}

func (n *planNotes) ofType(typ string) []Notice {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Notice
	for _, x := range n.notes {
		if x.Type == typ {
			out = append(out, x)
		}
	}
	return out
}

// planRig is a planner on a real bbolt file, registry and twins, on a fake
// clock, with a recording command sender.
type planRig struct {
	t       *testing.T
	path    string
	db      *bolt.DB
	reg     *devices.Registry
	twins   *devices.Twins
	crews   *Crews
	planner *Planner
	clock   *fakeClock
	cmds    *planIssuer
	notes   *planNotes
	prom    *prometheus.Registry
	people  map[string]int
	peopleM sync.Mutex

	// reporting makes tickUntil report every station at each whole hour,
	// at the outdoor temperature the rig started with, as ACs keep doing.
	reporting bool
	stations  []string
	outdoorC  float64
}

// newPlanRig registers stations, each with an AC "<station>-ac" reporting
// outdoorC outside, and imports crews (a crews file).
func newPlanRig(t *testing.T, start time.Time, stations []string, outdoorC float64,
	crews string) *planRig {
	t.Helper()
	r := &planRig{t: t, path: filepath.Join(t.TempDir(), "w.db"), clock: &fakeClock{t: start},
		notes: &planNotes{}, people: map[string]int{}, stations: stations, outdoorC: outdoorC}
	var err error
	if r.db, err = devices.OpenDB(r.path, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.db.Close() })
	if r.reg, err = devices.NewRegistry(r.db, devices.RegistryOptions{}); err != nil {
		t.Fatal(err)
	}
	if r.twins, err = devices.NewTwins(r.db, devices.TwinsOptions{}); err != nil {
		t.Fatal(err)
	}
	var list []devices.Device
	for _, id := range stations {
		if _, err := r.reg.AddStation(devices.Station{ID: id, Name: id, Lat: 32.6, Lon: 116.3,
			Hours: "24h"}); err != nil {
			t.Fatal(err)
		}
		list = append(list, devices.Device{ID: id + "-ac", Station: id, Kind: schemas.KindAC})
	}
	if _, err := r.reg.Provision(list); err != nil {
		t.Fatal(err)
	}
	for _, id := range stations {
		r.report(id, false, 30, outdoorC, "")
	}
	if r.crews, err = NewCrews(r.db, r.clock.Now); err != nil {
		t.Fatal(err)
	}
	// Imported the day before, so the first shifts count.
	r.clock.Add(-48 * time.Hour)
	tt, err := ParseTimetable("crews.yaml", []byte(crews), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.crews.Import(tt); err != nil {
		t.Fatal(err)
	}
	r.clock.Add(48 * time.Hour)
	r.cmds = &planIssuer{reg: r.reg, now: r.clock.Now}
	r.open()
	// A day of hourly reports at outdoorC, the idle rooms 2 °C warmer: the
	// forecast is flat.
	now := r.clock.Now()
	for h := 24; h >= 0; h-- {
		r.clock.Set(now.Add(-time.Duration(h) * time.Hour))
		for _, id := range stations {
			r.report(id, false, outdoorC+2, outdoorC, "")
		}
	}
	return r
}

// open builds a planner on the rig's file: a restart, when one ran before.
func (r *planRig) open() {
	r.t.Helper()
	r.prom = prometheus.NewRegistry()
	var err error
	r.planner, err = NewPlanner(PlannerOptions{
		DB: r.db, Registry: r.reg, Twins: r.twins, Crews: r.crews, Commands: r.cmds,
		Notifier: r.notes, Now: r.clock.Now, Registerer: r.prom, Location: shanghai,
		Occupancy: func(st string) int {
			r.peopleM.Lock()
			defer r.peopleM.Unlock()
			return r.people[st]
		},
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

// restart drops the planner and opens another on the same file, as a
// server restart does.
func (r *planRig) restart() {
	r.planner = nil
	r.open()
}

// report makes station's AC report a state, through the twin and the
// planner, at the rig's clock.
func (r *planRig) report(station string, power bool, roomC, outdoorC float64, fault string) {
	r.t.Helper()
	d, err := r.reg.Device(station + "-ac")
	if err != nil {
		r.t.Fatal(err)
	}
	now := r.clock.Now()
	r.twins.ApplyStatus(d, schemas.Status{Online: true, Kind: schemas.KindAC}, now)
	o := outdoorC
	tel := schemas.Telemetry{Kind: schemas.KindAC, AC: &schemas.ACState{Power: power,
		Mode: schemas.ModeCool, SetpointC: 26, RoomC: roomC, OutdoorC: &o, Fault: fault}}
	if _, err := r.twins.ApplyTelemetry(d, tel, now); err != nil {
		r.t.Fatal(err)
	}
	if r.planner != nil {
		r.planner.Observe(Observation{Device: d, Channel: schemas.ChannelTelemetry, At: now,
			Telem: &tel})
	}
}

// tickUntil moves the clock in steps up to end, ticking at each.
func (r *planRig) tickUntil(end time.Time, step time.Duration) {
	for t := r.clock.Now(); !t.After(end); t = t.Add(step) {
		r.clock.Set(t)
		if r.reporting && t.Truncate(time.Hour).Equal(t) {
			for _, id := range r.stations {
				r.report(id, false, r.outdoorC+2, r.outdoorC, "")
			}
		}
		r.planner.Tick()
	}
}

func (r *planRig) outcome(name string) float64 {
	return testutil.ToFloat64(r.planner.runs.WithLabelValues(name))
}

// byRun counts commands by the run that issued them.
func byRun(list []issued) map[string]int {
	out := map[string]int{}
	for _, c := range list {
		out[strings.TrimPrefix(c.Issuer, "schedule:")]++
	}
	return out
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestPlanDaylightSaving: shifts at 02:30 and 00:01 in Berlin and Paris
// across the spring and autumn changes each fire once: 02:30 on the spring
// day (a time the clock skips) at 03:30, on the autumn day (a time the
// clock shows twice) at its first occurrence, and the day after each
// change at their usual time.
func TestPlanDaylightSaving(t *testing.T) {
	for _, zone := range []string{"Europe/Berlin", "Europe/Paris"} {
		loc := mustZone(t, zone)
		for _, season := range []struct {
			name     string
			day      int
			month    time.Month
			want0230 string // the 02:30 shift on the day of the change, in UTC
		}{
			{"spring", 30, time.March, "2025-03-30T01:30:00Z"},   // 03:30 CEST
			{"autumn", 26, time.October, "2025-10-26T00:30:00Z"}, // 02:30 CEST, the first
		} {
			t.Run(zone+"/"+season.name, func(t *testing.T) {
				crews := fmt.Sprintf(`crews:
  - {id: night, time_zone: %s, stations: [st-1], week: {daily: ["00:01", "02:30"]}}
`, zone)
				start := time.Date(2025, season.month, season.day-1, 12, 0, 0, 0, loc)
				r := newPlanRig(t, start, []string{"st-1"}, 40, crews)
				r.tickUntil(time.Date(2025, season.month, season.day+1, 12, 0, 0, 0, loc), time.Minute)

				var want []time.Time
				for d := season.day; d <= season.day+1; d++ {
					want = append(want,
						time.Date(2025, season.month, d, 0, 1, 0, 0, loc))
					if d == season.day {
						w, _ := time.Parse(time.RFC3339, season.want0230)
						want = append(want, w)
					} else {
						want = append(want, time.Date(2025, season.month, d, 2, 30, 0, 0, loc))
					}
				}
				starts, stops := byRun(r.cmds.commands(true)), byRun(r.cmds.commands(false))
				if len(starts) != len(want) || len(stops) != len(want) {
					t.Fatalf("starts %v stops %v, want one each for %v", starts, stops, want)
				}
				for _, w := range want {
					id := runID("st-1", w)
					if starts[id] != 1 || stops[id] != 1 {
						t.Errorf("run %s (%s): %d starts, %d stops", id, w.In(loc), starts[id], stops[id])
					}
				}
				// Each started 30 min (the default lead) before its shift.
				for _, c := range r.cmds.commands(true) {
					var shift time.Time
					for _, w := range want {
						if runID("st-1", w) == strings.TrimPrefix(c.Issuer, "schedule:") {
							shift = w
						}
					}
					if got := shift.Sub(c.At); got != DefaultLeadTime {
						t.Errorf("%s started %v before its shift", c.Issuer, got)
					}
				}
			})
		}
	}
}

// TestPlanClockJumps: a clock that jumps forward and back fires nothing
// twice; a jump into a run's lead starts it late, a jump past a shift
// misses its run.
func TestPlanClockJumps(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2025, 7, 22, h, m, 0, 0, shanghai) }
	crews := `crews:
  - {id: a, time_zone: Asia/Shanghai, stations: [st-1], week: {daily: ["05:30", "11:30"]}}
`
	r := newPlanRig(t, at(3, 0), []string{"st-1"}, 34, crews)
	early, late := runID("st-1", at(5, 30)), runID("st-1", at(11, 30))

	r.clock.Set(at(5, 10)) // 10 min into the 05:30 run's lead: late
	r.planner.Tick()
	r.clock.Set(at(4, 50)) // back before its start
	r.planner.Tick()
	r.clock.Set(at(5, 20))
	r.planner.Tick()
	if got := byRun(r.cmds.commands(true)); got[early] != 1 || len(got) != 1 {
		t.Fatalf("starts after jumping around 05:00: %v", got)
	}
	if r.outcome(OutcomeStartedLate) != 1 {
		t.Fatalf("started_late = %v", r.outcome(OutcomeStartedLate))
	}

	r.clock.Set(at(12, 0)) // past the 11:30 shift: that run is missed, the first stops
	r.planner.Tick()
	r.clock.Set(at(11, 5)) // back into the 11:30 run's lead
	r.planner.Tick()
	r.clock.Set(at(6, 0)) // and into the first run's rest window
	r.planner.Tick()
	r.clock.Set(at(12, 30))
	r.planner.Tick()
	starts, stops := byRun(r.cmds.commands(true)), byRun(r.cmds.commands(false))
	if starts[early] != 1 || starts[late] != 0 || stops[early] != 1 || len(stops) != 1 {
		t.Fatalf("after the jumps: starts %v stops %v", starts, stops)
	}
	if r.outcome(OutcomeMissed) != 1 || len(r.notes.ofType(NoticePlanMissed)) != 1 {
		t.Fatalf("missed = %v, notices %d", r.outcome(OutcomeMissed),
			len(r.notes.ofType(NoticePlanMissed)))
	}
	pl, err := r.planner.Plan("2025-07-22", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Runs) != 2 || pl.Runs[0].State != RunStopped || pl.Runs[1].State != RunMissed {
		t.Fatalf("plan after the jumps: %+v", pl.Runs)
	}
}

// TestPlanRestart: a restart just before a planned start starts the run
// on time, once; a restart just after does not start it again; a server
// down across a start starts the run late, and one down past the shift
// misses it.
func TestPlanRestart(t *testing.T) {
	at := func(h, m, s int) time.Time { return time.Date(2025, 7, 22, h, m, s, 0, shanghai) }
	crews := `crews:
  - {id: a, time_zone: Asia/Shanghai, stations: [st-1], week: {daily: ["05:30", "11:30", "14:00"]}}
`
	r := newPlanRig(t, at(4, 0, 0), []string{"st-1"}, 34, crews)
	first, second, third := runID("st-1", at(5, 30, 0)), runID("st-1", at(11, 30, 0)),
		runID("st-1", at(14, 0, 0))

	// Just before the 05:00 start.
	r.tickUntil(at(4, 59, 50), 10*time.Second)
	if n := len(r.cmds.commands(true)); n != 0 {
		t.Fatalf("%d starts before 05:00", n)
	}
	r.restart()
	r.clock.Set(at(5, 0, 0))
	r.planner.Tick()
	if got := byRun(r.cmds.commands(true)); got[first] != 1 {
		t.Fatalf("after a restart just before the start: %v", got)
	}
	// Just after it.
	r.restart()
	r.tickUntil(at(5, 1, 0), 10*time.Second)
	if got := byRun(r.cmds.commands(true)); got[first] != 1 || len(got) != 1 {
		t.Fatalf("after a restart just after the start: %v", got)
	}
	if r.outcome(OutcomeStarted) != 0 {
		t.Fatal("the new planner counted a start it did not make")
	}

	// Down from 10:00 (the 11:30 run fixed) to 11:10: starts late, once.
	r.tickUntil(at(10, 0, 0), time.Minute)
	r.restart()
	r.clock.Set(at(11, 10, 0))
	r.planner.Tick()
	r.planner.Tick()
	if got := byRun(r.cmds.commands(true)); got[second] != 1 {
		t.Fatalf("run due during the downtime: %v", got)
	}
	if r.outcome(OutcomeStartedLate) != 1 {
		t.Fatalf("started_late = %v", r.outcome(OutcomeStartedLate))
	}
	// Down from 13:00 to 14:05, past the 14:00 shift: missed, never started.
	r.tickUntil(at(13, 0, 0), time.Minute)
	r.restart()
	r.clock.Set(at(14, 5, 0))
	r.tickUntil(at(15, 0, 0), time.Minute)
	if got := byRun(r.cmds.commands(true)); got[third] != 0 || len(got) != 2 {
		t.Fatalf("run whose shift passed during the downtime: %v", got)
	}
	stops := byRun(r.cmds.commands(false))
	if stops[first] != 1 || stops[second] != 1 || stops[third] != 0 {
		t.Fatalf("stops %v", stops)
	}
}

// TestPlanMatchesRuns: the plan made the day before says exactly what then
// fires: which stations start, when, to what target, and when they stop.
func TestPlanMatchesRuns(t *testing.T) {
	crews := `defaults: {rest_min: 45}
stations:
  st-2: {cool_to_c: 27, rest_min: 30}
  st-3: {off: true}
crews:
  - id: sanitation
    time_zone: Asia/Shanghai
    stations: [st-1, st-2, st-3]
    week: {daily: ["05:30", "11:30", "14:00", "17:30"]}
  - id: riders
    time_zone: Asia/Shanghai
    stations: [st-1]
    week: {daily: ["11:30", "23:50"]}
`
	r := newPlanRig(t, time.Date(2025, 7, 21, 12, 0, 0, 0, shanghai), []string{"st-1", "st-2", "st-3"},
		35, crews)
	// st-1 has learned: 3 min per degree.
	r.planner.mu.Lock()
	l := r.planner.learn["st-1"]
	l.CoolMinPerC, l.CoolRuns, l.IdleOffsetC, l.IdleN = 3, 2, 2, 5
	r.planner.mu.Unlock()

	pl, err := r.planner.Plan("2025-07-22", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]PlannedRun{}
	for _, run := range pl.Runs {
		if run.Action != ActionNone {
			want[run.ID] = run
		}
	}
	// st-1: 5 shift changes (11:30 shared by both crews), st-2: 4, st-3: off.
	if len(pl.Runs) != 13 || len(want) != 9 {
		t.Fatalf("plan has %d runs, %d to fire: %+v", len(pl.Runs), len(want), pl.Runs)
	}
	r1 := want[runID("st-1", time.Date(2025, 7, 22, 11, 30, 0, 0, shanghai))]
	// 35 °C outside + 2 idle offset = 37 °C at the start; 11 °C to go at
	// 3 min/°C plus 15 % and 3 min: 41 min.
	if r1.LeadMin != 41 || r1.TargetC != 26 || len(r1.Crews) != 2 || r1.LeadFrom == "" ||
		!r1.Stop.Equal(r1.Shift.Add(45*time.Minute)) {
		t.Fatalf("st-1 11:30: %+v", r1)
	}
	r2 := want[runID("st-2", time.Date(2025, 7, 22, 5, 30, 0, 0, shanghai))]
	if r2.LeadMin != 30 || r2.TargetC != 27 || !r2.Stop.Equal(r2.Shift.Add(30*time.Minute)) ||
		!strings.Contains(r2.Why, "default") {
		t.Fatalf("st-2 05:30: %+v", r2)
	}

	r.reporting = true
	r.tickUntil(time.Date(2025, 7, 23, 1, 0, 0, 0, shanghai), 15*time.Second)
	// The runs of the 22nd (the afternoon of the 21st fired too).
	of22 := func(list []issued) []issued {
		var out []issued
		for _, c := range list {
			if _, ok := want[strings.TrimPrefix(c.Issuer, "schedule:")]; ok {
				out = append(out, c)
			}
		}
		return out
	}
	starts := of22(r.cmds.commands(true))
	if len(starts) != len(want) {
		t.Fatalf("%d starts, plan said %d", len(starts), len(want))
	}
	for _, c := range starts {
		run, ok := want[strings.TrimPrefix(c.Issuer, "schedule:")]
		if !ok {
			t.Errorf("unplanned start %s", c.Issuer)
			continue
		}
		if !c.At.Equal(run.Start) || c.Args["setpoint_c"] != run.TargetC ||
			c.Args["mode"] != run.Action || c.Device != run.Devices[0] {
			t.Errorf("%s fired at %v with %v; the plan said %v to %g", run.ID, c.At, c.Args,
				run.Start, run.TargetC)
		}
	}
	for _, c := range of22(r.cmds.commands(false)) {
		run := want[strings.TrimPrefix(c.Issuer, "schedule:")]
		if !c.At.Equal(run.Stop) {
			t.Errorf("%s stopped at %v; the plan said %v", run.ID, c.At, run.Stop)
		}
	}
	if n := len(of22(r.cmds.commands(false))); n != len(want) {
		t.Errorf("%d stops, want %d", n, len(want))
	}
	if got := r.outcome(OutcomeStarted); got != float64(len(want)+5) {
		t.Errorf("started = %v, want %d and 5 of the 21st", got, len(want))
	}
}

// TestPlanWarnsAndHolds: a station whose AC is in fault is warned about
// before its shift, once; a run stays on while people are inside, then
// stops.
func TestPlanWarnsAndHolds(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2025, 7, 22, h, m, 0, 0, shanghai) }
	crews := `crews:
  - {id: a, time_zone: Asia/Shanghai, stations: [st-1, st-2], week: {daily: ["05:30"]}}
`
	r := newPlanRig(t, at(1, 0), []string{"st-1", "st-2"}, 34, crews)
	r.report("st-2", false, 31, 34, "E4")
	r.tickUntil(at(4, 0), time.Minute)
	warns := r.notes.ofType(NoticePlanWarning)
	if len(warns) != 1 || warns[0].Station != "st-2" || !warns[0].At.Before(at(5, 30)) ||
		!strings.Contains(warns[0].Key, "fault E4") {
		t.Fatalf("warnings before the shift: %+v", warns)
	}
	pl, _ := r.planner.Plan("2025-07-22", keepStations("st-2"))
	if len(pl.Runs) != 1 || len(pl.Runs[0].Warnings) != 1 {
		t.Fatalf("plan of st-2: %+v", pl.Runs)
	}

	r.peopleM.Lock()
	r.people["st-1"] = 2
	r.peopleM.Unlock()
	r.tickUntil(at(6, 30), time.Minute)
	id := runID("st-1", at(5, 30))
	if got := byRun(r.cmds.commands(false)); got[id] != 0 || r.outcome(OutcomeHeld) != 1 {
		t.Fatalf("stopped with people inside: %v, held %v", got, r.outcome(OutcomeHeld))
	}
	r.peopleM.Lock()
	r.people["st-1"] = 0
	r.peopleM.Unlock()
	r.tickUntil(at(6, 40), time.Minute)
	var stops []issued
	for _, c := range r.cmds.commands(false) {
		if c.Issuer == "schedule:"+id {
			stops = append(stops, c)
		}
	}
	if len(stops) != 1 || !stops[0].At.Equal(at(6, 30)) {
		t.Fatalf("stop once people left: %+v", stops)
	}
	if len(r.notes.ofType(NoticePlanWarning)) != 1 {
		t.Fatal("a warning was repeated")
	}
}

// TestPlanLearnsRate: a station that cools at a known rate teaches the
// planner its minutes per degree, and the lead time follows.
func TestPlanLearnsRate(t *testing.T) {
	at := func(d, h, m int) time.Time { return time.Date(2025, 7, d, h, m, 0, 0, shanghai) }
	crews := `crews:
  - {id: a, time_zone: Asia/Shanghai, stations: [st-1], week: {daily: ["11:30"]}}
`
	const outdoorC, perMin = 36.0, 0.4 // the room falls 0.4 °C a minute while the AC runs
	r := newPlanRig(t, at(20, 8, 0), []string{"st-1"}, outdoorC, crews)
	room := outdoorC + 1.5 // an idle room: 1.5 °C over the outdoor air
	var leads []int
	for day := 20; day <= 24; day++ {
		on := false
		for t := at(day, 8, 0); t.Before(at(day, 13, 0)); t = t.Add(time.Minute) {
			r.clock.Set(t)
			r.planner.Tick()
			started := len(r.cmds.commands(true)) > len(r.cmds.commands(false))
			switch {
			case started && !on:
				on = true
			case !started && on:
				on = false
			}
			if on {
				room = max(room-perMin, 26)
			} else {
				room = min(room+0.5, outdoorC+1.5)
			}
			r.report("st-1", on, room, outdoorC, "")
		}
		pl, _ := r.planner.Plan(fmt.Sprintf("2025-07-%02d", day), nil)
		leads = append(leads, pl.Runs[0].LeadMin)
	}
	// 11.5 °C to go at 0.4 °C a minute: 28.75 min, 2.5 min per degree.
	r.planner.mu.Lock()
	rate := r.planner.learn["st-1"].CoolMinPerC
	r.planner.mu.Unlock()
	if rate < 2.4 || rate > 2.7 {
		t.Fatalf("learned %.2f min per °C, want about 2.5", rate)
	}
	if leads[0] != 30 || leads[len(leads)-1] < 33 || leads[len(leads)-1] > 40 {
		t.Fatalf("lead times day by day %v: want the default, then about 37 min", leads)
	}
	sort.Ints(leads)
}

// TestPlanForecastAlongTheDay: without a report of the same hour, the
// latest report moves along a day's curve: warmest at 14:30, coolest at
// 05:30, by 4 °C either side until the station's reports show its swing.
func TestPlanForecastAlongTheDay(t *testing.T) {
	at := func(d, h, m int) time.Time { return time.Date(2025, 7, d, h, m, 0, 0, shanghai) }
	r := newPlanRig(t, at(22, 5, 30), []string{"st-1"}, 30, `crews: []
defaults: {rest_min: 45}
`)
	// Forget the day of reports: only the latest one stays.
	r.planner.mu.Lock()
	r.planner.learn["st-1"] = &stationLearning{}
	r.planner.mu.Unlock()
	ix := r.planner.indexACs()
	for _, tc := range []struct {
		t    time.Time
		want float64
	}{
		{at(22, 14, 30), 38}, {at(22, 5, 45), 30}, {at(23, 5, 30), 30}, {at(22, 10, 0), 34},
	} {
		got, from := r.planner.forecast("st-1", tc.t, at(22, 5, 30), ix)
		if got == nil || math.Abs(*got-tc.want) > 0.05 {
			t.Errorf("forecast for %v: %v (%s), want %v", tc.t, got, from, tc.want)
		}
	}
	// A day of reports from 26 to 36 °C: half its range is the swing.
	r.planner.mu.Lock()
	l := r.planner.learn["st-1"]
	for h := range 24 {
		hour := at(21, 6, 0).Unix()/3600 + int64(h)
		l.Hours[hour%24] = hourTemp{Hour: hour, C: 26 + 10*float64(h%12)/11}
	}
	r.planner.mu.Unlock()
	if got := r.planner.daySwing("st-1", at(22, 5, 30)); got != 5 {
		t.Fatalf("swing %v, want 5", got)
	}
}

// TestPlanShutdownKeepsRun: a run whose start meets a command sender that
// is shutting down is not lost: the next start of the server starts it,
// late, once.
func TestPlanShutdownKeepsRun(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2025, 7, 22, h, m, 0, 0, shanghai) }
	r := newPlanRig(t, at(4, 0), []string{"st-1"}, 34, `crews:
  - {id: a, time_zone: Asia/Shanghai, stations: [st-1], week: {daily: ["05:30"]}}
`)
	r.cmds.fail = ErrCommandsStopped
	r.tickUntil(at(5, 0), time.Minute)
	pl, _ := r.planner.Plan("2025-07-22", nil)
	if pl.Runs[0].State != RunPlanned || r.outcome(OutcomeFailed) != 0 {
		t.Fatalf("run after a start during shutdown: %+v", pl.Runs[0])
	}
	r.cmds.mu.Lock()
	r.cmds.fail = nil
	r.cmds.mu.Unlock()
	r.restart()
	r.clock.Set(at(5, 5))
	r.tickUntil(at(5, 10), time.Minute)
	if got := byRun(r.cmds.commands(true)); got[runID("st-1", at(5, 30))] != 1 || len(got) != 1 {
		t.Fatalf("starts after the restart: %v", got)
	}
	if r.outcome(OutcomeStartedLate) != 1 {
		t.Fatalf("started_late = %v", r.outcome(OutcomeStartedLate))
	}
}

// TestPlanUnplannedBeforeImport: a shift that passed before its timetable
// was imported is shown as unplanned, and is neither missed nor fired.
func TestPlanUnplannedBeforeImport(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2025, 7, 22, h, m, 0, 0, shanghai) }
	r := newPlanRig(t, at(12, 0), []string{"st-1"}, 34, "crews: []\ndefaults: {rest_min: 45}\n")
	tt, err := ParseTimetable("", []byte(`crews:
  - {id: late, time_zone: Asia/Shanghai, stations: [st-1], week: {daily: ["11:50", "14:00"]}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.crews.Import(tt); err != nil {
		t.Fatal(err)
	}
	r.tickUntil(at(12, 10), time.Minute)
	pl, _ := r.planner.Plan("2025-07-22", nil)
	if len(pl.Runs) != 2 || pl.Runs[0].State != RunUnplanned || pl.Runs[1].State != RunPlanned {
		t.Fatalf("plan: %+v", pl.Runs)
	}
	if len(r.cmds.commands(true)) != 0 || r.outcome(OutcomeMissed) != 0 {
		t.Fatal("a shift before the import was fired or missed")
	}
}

// TestPlanWarnsTooWeak: a run that stopped before its room reached the
// target teaches that the station is too weak at that heat; the next run
// at that outdoor temperature or hotter is warned about before its shift.
func TestPlanWarnsTooWeak(t *testing.T) {
	at := func(d, h, m int) time.Time { return time.Date(2025, 7, d, h, m, 0, 0, shanghai) }
	r := newPlanRig(t, at(22, 8, 0), []string{"st-1"}, 38, `crews:
  - {id: a, time_zone: Asia/Shanghai, stations: [st-1], week: {daily: ["11:30"]}}
`)
	// The AC runs but the room stays at 33 °C.
	for tm := at(22, 8, 0); tm.Before(at(22, 13, 0)); tm = tm.Add(time.Minute) {
		r.clock.Set(tm)
		r.planner.Tick()
		on := len(r.cmds.commands(true)) > len(r.cmds.commands(false))
		r.report("st-1", on, 33, 38, "")
	}
	if n := len(r.notes.ofType(NoticePlanWarning)); n != 0 {
		t.Fatalf("%d warnings before anything was learned", n)
	}
	r.tickUntil(at(23, 9, 0), 10*time.Minute)
	warns := r.notes.ofType(NoticePlanWarning)
	if len(warns) != 1 || !strings.Contains(warns[0].Key, "too weak for 38.0 °C") ||
		!warns[0].At.Before(at(23, 11, 30)) {
		t.Fatalf("warnings: %+v", warns)
	}
}
