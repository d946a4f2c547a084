package controller

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// What the planner learns, per station, from its ACs' telemetry.
//
// Outdoor forecast. The platform has no weather service: the outdoor
// temperature expected at an hour is the one the station's AC reported at
// the same hour of the day within the last 36 hours (the warmest report of
// that hour), else its latest report moved along a typical day's curve
// (coolest at 05:30, warmest at 14:30, by half the range the station saw
// over the last day, else 4 °C). Tomorrow is taken to be like today.
//
// Lead time. On each run the planner notes the room temperature when the
// AC first reports running as told, and the time from then until the room
// came within reachBandC of the target;
// minutes per degree of gap is their ratio, averaged over runs
// (learnWeight on the newest). The lead time is the expected gap at the
// start times that ratio, plus leadMargin and leadFixedMin, within
// MinLeadTime..MaxLeadTime. The expected room temperature at the start is
// the forecast outdoor temperature plus the station's usual offset of an
// idle room over the outdoor air. A fixed run starts earlier than planned
// when the room reported before its start is further from the target than
// its lead allows for.
//
// Too weak. A run that never reached its target before its stop notes the
// outdoor temperature; a later run at that outdoor temperature or beyond
// (hotter for cooling, colder for heating) is warned about.
const (
	reachBandC    = 0.5
	minLearnGapC  = 1.0  // a run starting closer to the target teaches nothing
	learnWeight   = 0.5  // weight of the newest run in the average
	leadMargin    = 0.15 // extra share of the learned lead time
	leadFixedMin  = 3.0  // and minutes: the command's trip, the inverter easing off near the target
	idleOffsetC   = 2.0  // an idle room over the outdoor air, until learned
	forecastReach = 36 * time.Hour
	idleSettle    = 2 * time.Hour // a room is idle this long after a run stopped
)

var bucketPlanLearn = []byte("plan_learning")

// stationLearning is what the planner knows of one station.
type stationLearning struct {
	CoolMinPerC float64 `json:"cool_min_per_c,omitempty"` // 0 until a cooling run taught it
	CoolRuns    int     `json:"cool_runs,omitempty"`
	HeatMinPerC float64 `json:"heat_min_per_c,omitempty"`
	HeatRuns    int     `json:"heat_runs,omitempty"`
	// WeakCoolC is the coolest outdoor temperature at which a cooling run
	// failed to reach its target; WeakHeatC the warmest for heating.
	WeakCoolC *float64 `json:"weak_cool_c,omitempty"`
	WeakHeatC *float64 `json:"weak_heat_c,omitempty"`
	// IdleOffsetC is the room over the outdoor air while the AC is off,
	// averaged; IdleN counts the reports averaged, up to a cap.
	IdleOffsetC float64 `json:"idle_offset_c,omitempty"`
	IdleN       int     `json:"idle_n,omitempty"`
	// Hours holds the warmest outdoor report of each hour of the day.
	Hours [24]hourTemp `json:"hours"`

	dirty bool
}

// hourTemp is the warmest outdoor report within one hour.
type hourTemp struct {
	Hour int64   `json:"h,omitempty"` // Unix hour (seconds / 3600)
	C    float64 `json:"c,omitempty"`
}

func (l *stationLearning) weakAt(action string) *float64 {
	if action == ActionHeat {
		return l.WeakHeatC
	}
	return l.WeakCoolC
}

// minPerC returns the learned minutes per degree for action, or 0.
func (l *stationLearning) minPerC(action string) float64 {
	if action == ActionHeat {
		return l.HeatMinPerC
	}
	return l.CoolMinPerC
}

// learnRate folds one run's minutes per degree into the average.
func (l *stationLearning) learnRate(action string, v float64) {
	rate, n := &l.CoolMinPerC, &l.CoolRuns
	if action == ActionHeat {
		rate, n = &l.HeatMinPerC, &l.HeatRuns
	}
	if *n == 0 || *rate == 0 {
		*rate = v
	} else {
		*rate = learnWeight*v + (1-learnWeight)**rate
	}
	*n++
	l.dirty = true
}

// load reads the ledger and the learning records.
func (p *Planner) load() error {
	return p.o.DB.Update(func(tx *bolt.Tx) error {
		lb, err := tx.CreateBucketIfNotExists(bucketPlanRuns)
		if err != nil {
			return err
		}
		if err := lb.ForEach(func(k, v []byte) error {
			rec := new(runRecord)
			if err := json.Unmarshal(v, rec); err != nil {
				return fmt.Errorf("planned run %s: %w", k, err)
			}
			p.ledger[string(k)] = rec
			return nil
		}); err != nil {
			return fmt.Errorf("load run ledger: %w", err)
		}
		b, err := tx.CreateBucketIfNotExists(bucketPlanLearn)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			l := new(stationLearning)
			if err := json.Unmarshal(v, l); err != nil {
				return fmt.Errorf("learning of %s: %w", k, err)
			}
			p.learn[string(k)] = l
			return nil
		})
	})
}

// saveLearning writes the changed learning records.
func (p *Planner) saveLearning() error {
	p.mu.Lock()
	batch := map[string][]byte{}
	for st, l := range p.learn {
		if !l.dirty {
			continue
		}
		buf, err := json.Marshal(l)
		if err != nil {
			p.mu.Unlock()
			return err
		}
		batch[st] = buf
		l.dirty = false
	}
	p.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	return p.o.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPlanLearn)
		for st, buf := range batch {
			if err := b.Put([]byte(st), buf); err != nil {
				return err
			}
		}
		return nil
	})
}

// Observe learns from AC telemetry: outdoor temperatures for the forecast,
// the idle room offset, and how fast a running station approaches its
// target. Give it to Ingest.Observe.
func (p *Planner) Observe(obs Observation) {
	if obs.Telem == nil || obs.Telem.AC == nil {
		return
	}
	ac := obs.Telem.AC
	st := obs.Device.Station
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.learn[st]
	if l == nil {
		l = &stationLearning{}
		p.learn[st] = l
	}
	if ac.OutdoorC != nil {
		hour := obs.At.Unix() / 3600
		slot := &l.Hours[hour%24]
		if slot.Hour != hour || *ac.OutdoorC > slot.C {
			*slot = hourTemp{Hour: hour, C: *ac.OutdoorC}
			l.dirty = true
		}
		if !ac.Power && ac.Fault == "" && !p.stationBusy(st, obs.At) {
			l.IdleN = min(l.IdleN+1, 50)
			off := ac.RoomC - *ac.OutdoorC
			l.IdleOffsetC += (off - l.IdleOffsetC) / float64(l.IdleN)
			l.dirty = true
		}
	}

	// Follow the runs of the station that are on.
	for _, rec := range p.ledger {
		if rec.Run.Station != st || rec.Learned || (rec.State != RunStarted && rec.State != RunHeld) {
			continue
		}
		if obs.At.Before(rec.StartedAt) {
			continue
		}
		if rec.StartRoomC == nil {
			// The first report of the AC running as told is where the room
			// began: the command's trip is the platform's, not the room's.
			if !ac.Power || ac.Mode != rec.Run.Action {
				continue
			}
			v := ac.RoomC
			rec.StartRoomC, rec.OnAt, rec.dirty = &v, obs.At, true
		}
		gap := *rec.StartRoomC - rec.Run.TargetC
		reached := ac.RoomC <= rec.Run.TargetC+reachBandC
		if rec.Run.Action == ActionHeat {
			gap = rec.Run.TargetC - *rec.StartRoomC
			reached = ac.RoomC >= rec.Run.TargetC-reachBandC
		}
		if !reached {
			rec.LastOutdoorC = ac.OutdoorC
			continue
		}
		rec.Learned, rec.ReachedAt, rec.dirty = true, obs.At, true
		if gap >= minLearnGapC {
			mins := obs.At.Sub(rec.OnAt).Minutes()
			l.learnRate(rec.Run.Action, mins/gap)
			p.log.Debug("learned lead time", "station", st, "run", rec.Run.ID,
				"minutes", math.Round(mins), "gap_c", round1(gap), "min_per_c", l.minPerC(rec.Run.Action))
		}
	}
}

// stationBusy reports whether a run of station is on at t, or stopped
// less than idleSettle before: its room is not an idle room. p.mu held.
func (p *Planner) stationBusy(station string, t time.Time) bool {
	for _, rec := range p.ledger {
		if rec.Run.Station != station || rec.StartedAt.IsZero() || t.Before(rec.StartedAt) {
			continue
		}
		if rec.State == RunStarted || rec.State == RunHeld || t.Sub(rec.StoppedAt) < idleSettle {
			return true
		}
	}
	return false
}

// noteWeak records that a run stopped before its room reached the target.
// p.mu held.
func (p *Planner) noteWeak(rec *runRecord) {
	if rec.Learned || rec.StartRoomC == nil || rec.LastOutdoorC == nil {
		return
	}
	l := p.learn[rec.Run.Station]
	if l == nil {
		return
	}
	o := *rec.LastOutdoorC
	switch rec.Run.Action {
	case ActionCool:
		if l.WeakCoolC == nil || o < *l.WeakCoolC {
			l.WeakCoolC, l.dirty = &o, true
		}
	case ActionHeat:
		if l.WeakHeatC == nil || o > *l.WeakHeatC {
			l.WeakHeatC, l.dirty = &o, true
		}
	}
}

// forecast is the outdoor temperature expected at station at t, and where
// it came from.
func (p *Planner) forecast(station string, t, now time.Time, ix acIndex) (*float64, string) {
	p.mu.Lock()
	l := p.learn[station]
	if l != nil {
		slot := l.Hours[(t.Unix()/3600)%24]
		if slot.Hour != 0 && now.Sub(time.Unix(slot.Hour*3600, 0)) <= forecastReach {
			c := slot.C
			p.mu.Unlock()
			return &c, "reported at that hour " + hoursAgo(now, slot.Hour)
		}
	}
	p.mu.Unlock()

	// Else the latest report of the station's ACs, moved along a typical
	// day's curve from its hour to t's.
	var best *float64
	var at time.Time
	for _, d := range ix[station] {
		tw, ok := p.o.Twins.Get(d.ID)
		if st := planACState(tw); ok && st != nil && st.OutdoorC != nil && tw.StateAt.After(at) {
			v := *st.OutdoorC
			best, at = &v, tw.StateAt
		}
	}
	if best == nil {
		return nil, ""
	}
	if t.Sub(at).Abs() < time.Hour {
		return best, "latest report"
	}
	swing := p.daySwing(station, now)
	v := *best + swing*(dayShape(t.In(p.o.Location))-dayShape(at.In(p.o.Location)))
	return &v, fmt.Sprintf("latest report %.1f °C at %s, along a day's ±%.1f °C",
		*best, at.In(p.o.Location).Format("15:04"), swing)
}

// Outdoor temperatures follow a day's curve: coolest at dawn, warmest in
// the afternoon.
const (
	coolestHour   = 5.5
	warmestHour   = 14.5
	defaultSwingC = 4.0 // half the day's range, until the station's reports show it
)

// dayShape is where local time t lies on a day's curve, -1 at the coolest
// hour to +1 at the warmest.
func dayShape(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	if h < coolestHour {
		h += 24
	}
	if h <= warmestHour {
		return -math.Cos(math.Pi * (h - coolestHour) / (warmestHour - coolestHour))
	}
	return math.Cos(math.Pi * (h - warmestHour) / (24 - warmestHour + coolestHour))
}

// daySwing is half the range of the station's outdoor reports over the
// last day, when they cover most of its hours; else defaultSwingC.
func (p *Planner) daySwing(station string, now time.Time) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.learn[station]
	if l == nil {
		return defaultSwingC
	}
	lo, hi, n := math.Inf(1), math.Inf(-1), 0
	for _, s := range l.Hours {
		if s.Hour != 0 && now.Sub(time.Unix(s.Hour*3600, 0)) <= 24*time.Hour {
			lo, hi, n = min(lo, s.C), max(hi, s.C), n+1
		}
	}
	if n < 18 {
		return defaultSwingC
	}
	return min(max((hi-lo)/2, 1), 10)
}

func hoursAgo(now time.Time, hour int64) string {
	h := int(now.Sub(time.Unix(hour*3600, 0)) / time.Hour)
	if h < 1 {
		return "this hour"
	}
	if h == 1 {
		return "1 h ago"
	}
	return fmt.Sprintf("%d h ago", h)
}

// leadTime is how long before shift the station's ACs should start to
// reach target, the room temperature expected at the start, where the
// lead came from, and the lead the station would really need (which may
// pass MaxLeadTime).
func (p *Planner) leadTime(station, action string, target float64, shift, now time.Time,
	ix acIndex) (lead time.Duration, room *float64, from string, needed time.Duration) {
	p.mu.Lock()
	l := p.learn[station]
	var rate, offset float64
	offset = idleOffsetC
	if l != nil {
		rate = l.minPerC(action)
		if l.IdleN > 0 {
			offset = l.IdleOffsetC
		}
	}
	p.mu.Unlock()

	if rate == 0 {
		return p.o.DefaultLead, nil, "default, no run seen yet", p.o.DefaultLead
	}
	// The room at the start: as idle rooms are, over the outdoor air then.
	guessStart := shift.Add(-p.o.DefaultLead)
	fc, _ := p.forecast(station, guessStart, now, ix)
	if fc == nil {
		return p.o.DefaultLead, nil, "default, no outdoor temperature", p.o.DefaultLead
	}
	r := *fc + offset
	gap := r - target
	if action == ActionHeat {
		gap = target - r
	}
	if gap <= reachBandC {
		return MinLeadTime, &r, "at target already", MinLeadTime
	}
	needed = leadFor(gap, rate)
	lead = min(max(needed, MinLeadTime), MaxLeadTime)
	return lead, &r, fmt.Sprintf("learned: %.1f min per °C over %.1f °C", rate, gap), needed
}

// leadFor is the lead time for a gap of gapC degrees at minPerC.
func leadFor(gapC, minPerC float64) time.Duration {
	return time.Duration(math.Ceil(gapC*minPerC*(1+leadMargin)+leadFixedMin)) * time.Minute
}

// earlyStart reports whether a fixed run should start before its planned
// start: its station's learned rate and the room its ACs report now (within
// the last 15 minutes) need a longer lead than the run has.
func (p *Planner) earlyStart(r PlannedRun, now time.Time) (bool, string) {
	if r.Action == ActionNone {
		return false, ""
	}
	p.mu.Lock()
	var rate float64
	if l := p.learn[r.Station]; l != nil {
		rate = l.minPerC(r.Action)
	}
	p.mu.Unlock()
	if rate == 0 {
		return false, ""
	}
	gap, room := 0.0, 0.0
	for _, id := range r.Devices {
		tw, ok := p.o.Twins.Get(id)
		st := planACState(tw)
		if !ok || st == nil || now.Sub(tw.StateAt) > 15*time.Minute {
			continue
		}
		g := st.RoomC - r.TargetC
		if r.Action == ActionHeat {
			g = r.TargetC - st.RoomC
		}
		if g > gap {
			gap, room = g, st.RoomC
		}
	}
	if gap <= reachBandC {
		return false, ""
	}
	need := min(leadFor(gap, rate), MaxLeadTime)
	if need <= r.Shift.Sub(r.Start) || now.Before(r.Shift.Add(-need)) {
		return false, ""
	}
	return true, fmt.Sprintf("the room reports %.1f °C: %d min needed", room, int(need/time.Minute))
}

// planACState decodes an AC twin's state; nil when it has none.
func planACState(tw devices.Twin) *schemas.ACState {
	if len(tw.State) == 0 {
		return nil
	}
	var st schemas.ACState
	if json.Unmarshal(tw.State, &st) != nil {
		return nil
	}
	return &st
}
