package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// Defaults of PlannerOptions.
const (
	DefaultLeadTime  = 30 * time.Minute // until a station has cooled or warmed on a run
	MinLeadTime      = 10 * time.Minute
	MaxLeadTime      = 90 * time.Minute
	DefaultWarnAhead = 2 * time.Hour    // runs are fixed, and warnings raised, this long before MaxLeadTime before the shift
	DefaultMaxHold   = 2 * time.Hour    // the longest a run stays on past its stop for people inside
	DefaultPlanEvery = 10 * time.Second // how often the planner looks at the clock
)

// Actions of a planned run.
const (
	ActionCool = "cool"
	ActionHeat = "heat"
	ActionNone = "none" // the weather does not call for it, or the station is off
)

// States of a planned run.
const (
	RunPlanned   = "planned"    // computed; fixed WarnAhead before the earliest start
	RunNotNeeded = "not_needed" // action none, fixed
	RunStarted   = "started"    // the ACs were told to start
	RunHeld      = "held"       // past its stop, kept on while people are inside
	RunStopped   = "stopped"    // the ACs were told to stop (or another run took over)
	RunMissed    = "missed"     // the shift began before the run could start
	RunFailed    = "failed"     // no AC took the start command
	RunCancelled = "cancelled"  // its crew no longer changes shift then
	RunUnplanned = "unplanned"  // its shift passed before it was fixed (timetable imported later)
)

// Outcomes counted in waystation_schedule_runs_total.
const (
	OutcomeStarted     = "started"
	OutcomeStartedLate = "started_late" // started after its planned start, before the shift
	OutcomeMissed      = "missed"
	OutcomeFailed      = "failed"
	OutcomeStopped     = "stopped"
	OutcomeHeld        = "held"
	OutcomeNotNeeded   = "not_needed"
	OutcomeCancelled   = "cancelled"
)

var scheduleOutcomes = []string{OutcomeStarted, OutcomeStartedLate, OutcomeMissed, OutcomeFailed,
	OutcomeStopped, OutcomeHeld, OutcomeNotNeeded, OutcomeCancelled}

// NoticePlanWarning is the Notice type of a run that may not reach its
// target by the shift; NoticePlanStarted and NoticePlanStopped tell that a
// run switched a station's ACs on or off, NoticePlanMissed that it could
// not start before the shift.
const (
	NoticePlanWarning = "plan.warning"
	NoticePlanStarted = "plan.started"
	NoticePlanStopped = "plan.stopped"
	NoticePlanMissed  = "plan.missed"
)

// PlannerOptions configures a Planner. DB, Registry, Twins and Crews are
// required.
type PlannerOptions struct {
	DB       *bolt.DB
	Registry *devices.Registry
	Twins    *devices.Twins
	Crews    *Crews
	// Commands starts and stops ACs; nil plans without firing anything.
	Commands CommandIssuer
	// Occupancy returns how many people are inside a station now; nil
	// means nobody is ever held for.
	Occupancy func(station string) int
	// Notifier is told of warnings and of runs starting and stopping.
	Notifier Notifier
	// Location is the time zone of a plan's date when none is given;
	// default time.Local.
	Location *time.Location
	// DefaultLead is the lead time of a station that has no history yet.
	DefaultLead time.Duration
	// WarnAhead is how long before the earliest a run could start
	// (MaxLeadTime before its shift) it is fixed and its warnings raised.
	// Default DefaultWarnAhead.
	WarnAhead time.Duration
	// MaxHold bounds how long past its stop a run stays on for people
	// inside. Default DefaultMaxHold.
	MaxHold time.Duration
	// Every is how often Run looks at the clock, in wall time.
	Every      time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Planner turns crews' timetables and stations' climate policies into runs
// of their ACs, fires each run once on its clock, and learns each
// station's lead time from how fast it cooled or warmed.
type Planner struct {
	o   PlannerOptions
	log *slog.Logger

	tickMu       sync.Mutex // one tick at a time; guards the cands fields
	cands        []candidate
	candsVersion uint64
	candsFrom    time.Time
	savedAt      time.Time // wall time learning was last written

	mu     sync.Mutex // guards ledger and learn
	ledger map[string]*runRecord
	learn  map[string]*stationLearning

	runs *prometheus.CounterVec
}

// PlannedRun is one run of a station's ACs before one shift change.
type PlannedRun struct {
	ID      string    `json:"id"`
	Station string    `json:"station"`
	Crews   []string  `json:"crews"`
	Shift   time.Time `json:"shift"`
	Action  string    `json:"action"`
	Start   time.Time `json:"start,omitzero"`
	Stop    time.Time `json:"stop,omitzero"`
	TargetC float64   `json:"target_c,omitempty"`
	LeadMin int       `json:"lead_min,omitempty"`
	// LeadFrom says where the lead time came from: "learned" (with the
	// minutes per degree), "default", or "at target".
	LeadFrom string `json:"lead_from,omitempty"`
	// OutdoorC is the outdoor temperature expected at the shift; RoomC the
	// room temperature expected at the start.
	OutdoorC *float64 `json:"outdoor_c,omitempty"`
	RoomC    *float64 `json:"room_c,omitempty"`
	Devices  []string `json:"devices,omitempty"`
	Why      string   `json:"why"`
	Warnings []string `json:"warnings,omitempty"`

	State     string    `json:"state"`
	StartedAt time.Time `json:"started_at,omitzero"`
	StoppedAt time.Time `json:"stopped_at,omitzero"`
	Commands  []string  `json:"commands,omitempty"`
}

// Plan is what will happen on one date, station by station.
type Plan struct {
	Date string       `json:"date"`
	At   time.Time    `json:"at"` // when the plan was made
	Runs []PlannedRun `json:"runs"`
}

// NewPlanner loads the run ledger and what was learned, and registers the
// metrics.
func NewPlanner(o PlannerOptions) (*Planner, error) {
	if o.DB == nil || o.Registry == nil || o.Twins == nil || o.Crews == nil {
		return nil, errors.New("planner needs a db, a registry, twins and crews")
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.DefaultLead <= 0 {
		o.DefaultLead = DefaultLeadTime
	}
	o.DefaultLead = min(max(o.DefaultLead, MinLeadTime), MaxLeadTime)
	if o.WarnAhead <= 0 {
		o.WarnAhead = DefaultWarnAhead
	}
	if o.MaxHold <= 0 {
		o.MaxHold = DefaultMaxHold
	}
	if o.Every <= 0 {
		o.Every = DefaultPlanEvery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Planner{o: o, log: o.Logger.With("component", "planner"),
		ledger: map[string]*runRecord{}, learn: map[string]*stationLearning{}}
	if err := p.load(); err != nil {
		return nil, err
	}
	p.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_schedule_runs_total",
		Help: "Planned AC runs by outcome: started, started_late, missed, failed, stopped, held, " +
			"not_needed, cancelled.",
	}, []string{"outcome"})
	for _, oc := range scheduleOutcomes {
		p.runs.WithLabelValues(oc)
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(p.runs); err != nil {
			return nil, fmt.Errorf("register planner metrics: %w", err)
		}
	}
	return p, nil
}

// ErrPlanDate is returned for a plan date that cannot be read.
var ErrPlanDate = errors.New("bad plan date")

// Plan returns the runs of every shift change on date (YYYY-MM-DD in each
// crew's time zone; "" for today in the planner's Location), for stations
// accepted by keep (nil keeps all), ordered by start.
func (p *Planner) Plan(date string, keep func(station string) bool) (Plan, error) {
	now := p.o.Now()
	if date == "" {
		date = now.In(p.o.Location).Format(time.DateOnly)
	}
	day, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return Plan{}, fmt.Errorf("%w %q: want YYYY-MM-DD", ErrPlanDate, date)
	}
	crews, pol, _ := p.o.Crews.snapshot()
	cands := p.candidates(crews, day, day, keep)
	ix := p.indexACs()

	out := Plan{Date: date, At: now, Runs: []PlannedRun{}}
	for _, c := range cands {
		p.mu.Lock()
		rec, fixed := p.ledger[c.id]
		var r PlannedRun
		if fixed {
			r = rec.view()
			r.Crews = c.crews // crews joining an already fixed run show
		}
		p.mu.Unlock()
		if !fixed {
			r = p.compute(c, pol.For(c.station), ix, now)
			if !now.Before(c.shift) {
				// Never fixed: its timetable came later, or the server was
				// away through it.
				r.State = RunUnplanned
				r.Start, r.Stop = time.Time{}, time.Time{}
			}
		}
		out.Runs = append(out.Runs, r)
	}
	sort.SliceStable(out.Runs, func(i, j int) bool {
		a, b := out.Runs[i], out.Runs[j]
		as, bs := a.Start, b.Start
		if as.IsZero() {
			as = a.Shift
		}
		if bs.IsZero() {
			bs = b.Shift
		}
		if !as.Equal(bs) {
			return as.Before(bs)
		}
		return a.Station < b.Station
	})
	return out, nil
}

// candidate is one shift change at one station, before it is computed.
type candidate struct {
	id      string
	station string
	shift   time.Time
	crews   []string
	source  []string  // which part of each crew's timetable gave the shift
	updated time.Time // when the newest of its crews was imported
}

// runID names the run of station's shift change at shift; it is the same
// every time the shift is computed, so the ledger knows it.
func runID(station string, shift time.Time) string {
	return station + "@" + shift.UTC().Format("20060102T1504Z")
}

// candidates lists the shift changes of crews on the local dates from..to
// (each crew's own zone), one per station and instant, crews sharing it
// joined.
func (p *Planner) candidates(crews []Crew, from, to time.Time,
	keep func(string) bool) []candidate {
	byID := map[string]*candidate{}
	var order []string
	for _, cr := range crews {
		loc, err := cr.Location()
		if err != nil {
			continue // checked at import; a zone database without it
		}
		for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
			times, src := cr.ShiftsOn(d.Year(), d.Month(), d.Day())
			for _, hm := range times {
				h, m, ok := shiftClock(hm)
				if !ok {
					continue
				}
				shift := localInstant(d.Year(), d.Month(), d.Day(), h, m, loc)
				for _, st := range cr.Stations {
					if keep != nil && !keep(st) {
						continue
					}
					id := runID(st, shift)
					c, ok := byID[id]
					if !ok {
						c = &candidate{id: id, station: st, shift: shift}
						byID[id] = c
						order = append(order, id)
					}
					c.crews = append(c.crews, cr.ID)
					if cr.Updated.After(c.updated) {
						c.updated = cr.Updated
					}
					c.source = append(c.source, cr.ID+" "+hm+" ("+src+")")
				}
			}
		}
	}
	out := make([]candidate, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out
}

// localInstant is the instant a wall clock in loc shows y-m-d h:m. A time
// that the clock skips (moving forward in spring) happens as the clock
// jumps, at the same distance past it (02:30 becomes 03:30); a time that
// it shows twice (moving back in autumn) happens the first time.
func localInstant(y int, mo time.Month, d, h, m int, loc *time.Location) time.Time {
	t := time.Date(y, mo, d, h, m, 0, 0, loc)
	for _, back := range []time.Duration{time.Hour, 30 * time.Minute, 2 * time.Hour} {
		e := t.Add(-back).In(loc)
		if e.Hour() == h && e.Minute() == m && e.Day() == d {
			return e
		}
	}
	return t
}

// acIndex maps stations to their registered ACs.
type acIndex map[string][]devices.Device

func (p *Planner) indexACs() acIndex {
	ix := acIndex{}
	for _, d := range p.o.Registry.Devices() {
		if d.Kind == schemas.KindAC {
			ix[d.Station] = append(ix[d.Station], d)
		}
	}
	return ix
}

// compute decides one run: whether the weather calls for cooling or
// heating, to what target, and from when.
func (p *Planner) compute(c candidate, pol ClimatePolicy, ix acIndex, now time.Time) PlannedRun {
	r := PlannedRun{ID: c.id, Station: c.station, Crews: c.crews, Shift: c.shift,
		Action: ActionNone, State: RunPlanned}
	for _, d := range ix[c.station] {
		r.Devices = append(r.Devices, d.ID)
	}
	shifts := strings.Join(c.source, "; ")
	if pol.Off {
		r.Why = "shift change " + shifts + "; the station's policy is off"
		return r
	}
	if len(r.Devices) == 0 {
		r.Why = "shift change " + shifts + "; the station has no AC"
		r.Warnings = append(r.Warnings, "no AC is registered at the station")
		return r
	}

	fc, fcFrom := p.forecast(c.station, c.shift, now, ix)
	if fc == nil {
		r.Why = "shift change " + shifts + "; no outdoor temperature reported yet"
		return r
	}
	out := round1(*fc)
	r.OutdoorC = &out
	switch {
	case out >= pol.CoolAtC:
		r.Action, r.TargetC = ActionCool, pol.CoolToC
	case out <= pol.HeatAtC:
		r.Action, r.TargetC = ActionHeat, pol.HeatToC
	default:
		r.Why = fmt.Sprintf("shift change %s; outdoor %.1f °C (%s) is between %g and %g °C: "+
			"nothing to do", shifts, out, fcFrom, pol.HeatAtC, pol.CoolAtC)
		return r
	}

	lead, room, leadFrom, needed := p.leadTime(c.station, r.Action, r.TargetC, c.shift, now, ix)
	r.LeadMin = int(lead / time.Minute)
	r.LeadFrom = leadFrom
	if room != nil {
		rc := round1(*room)
		r.RoomC = &rc
	}
	r.Start = c.shift.Add(-lead)
	r.Stop = c.shift.Add(time.Duration(pol.RestMin) * time.Minute)
	verb := "at or above"
	thr := pol.CoolAtC
	if r.Action == ActionHeat {
		verb, thr = "at or below", pol.HeatAtC
	}
	r.Why = fmt.Sprintf("shift change %s; outdoor %.1f °C (%s) is %s %g °C: %s to %g °C, "+
		"%d min ahead (%s), on until %d min after the shift", shifts, out, fcFrom, verb, thr,
		r.Action, r.TargetC, r.LeadMin, leadFrom, pol.RestMin)
	r.Warnings = append(r.Warnings, p.warnings(c.station, r, needed, ix)...)
	return r
}

// warnings says why the station may not reach its target by the shift.
func (p *Planner) warnings(station string, r PlannedRun, needed time.Duration,
	ix acIndex) []string {
	var out []string
	healthy := 0
	for _, d := range ix[station] {
		tw, ok := p.o.Twins.Get(d.ID)
		st := planACState(tw)
		switch {
		case !ok || tw.StateAt.IsZero():
			out = append(out, d.ID+" has never reported")
		case !tw.Online:
			out = append(out, d.ID+" is offline")
		case st != nil && st.Fault != "":
			out = append(out, fmt.Sprintf("%s reports fault %s", d.ID, st.Fault))
		default:
			healthy++
		}
	}
	if healthy == 0 {
		return out // no AC to start: nothing more to say
	}
	if needed > MaxLeadTime {
		out = append(out, fmt.Sprintf("needs about %d min to reach %g °C, more than the %d min "+
			"allowed", int(needed/time.Minute), r.TargetC, int(MaxLeadTime/time.Minute)))
	}
	if r.OutdoorC != nil {
		p.mu.Lock()
		l := p.learn[station]
		p.mu.Unlock()
		if l != nil {
			if w := l.weakAt(r.Action); w != nil && (r.Action == ActionCool && *r.OutdoorC >= *w ||
				r.Action == ActionHeat && *r.OutdoorC <= *w) {
				out = append(out, fmt.Sprintf("too weak for %.1f °C outdoor: an earlier run at "+
					"%.1f °C did not reach its target", *r.OutdoorC, *w))
			}
		}
	}
	return out
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// keepStations returns a filter of the stations in list; nil for all.
func keepStations(list ...string) func(string) bool {
	if len(list) == 0 {
		return nil
	}
	return func(s string) bool { return slices.Contains(list, s) }
}
