package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/schemas"
)

// Firing runs. A run is fixed in the ledger (bbolt) WarnAhead before the
// earliest it could start (MaxLeadTime before its shift); from then on its start, stop and target do not move,
// and every change of its state is written before the commands it sends.
// The ledger is what makes each run fire once: a restart reads it back, a
// clock that jumps back finds the run already started or stopped, and a
// clock that jumps past a shift finds the run missed rather than starting
// it late. A run whose start passed while the server was down starts late
// if its shift has not begun.

var bucketPlanRuns = []byte("plan_runs")

// ledgerKeep is how long finished runs stay in the ledger.
const ledgerKeep = 14 * 24 * time.Hour

// runRecord is one fixed run in the ledger.
type runRecord struct {
	Run   PlannedRun `json:"run"`
	State string     `json:"state"`
	// StartedAt and StoppedAt are the planner's clock when it sent the
	// start and stop commands.
	StartedAt time.Time `json:"started_at,omitzero"`
	StoppedAt time.Time `json:"stopped_at,omitzero"`
	Commands  []string  `json:"commands,omitempty"`
	Warned    []string  `json:"warned,omitempty"`
	// StartRoomC is the room in the first report of the AC running as
	// told, at OnAt; ReachedAt when the room came within reach of the
	// target.
	StartRoomC   *float64  `json:"start_room_c,omitempty"`
	OnAt         time.Time `json:"on_at,omitzero"`
	ReachedAt    time.Time `json:"reached_at,omitzero"`
	Learned      bool      `json:"learned,omitempty"`
	LastOutdoorC *float64  `json:"last_outdoor_c,omitempty"`

	dirty bool
}

// view is the run as plans show it.
func (rec *runRecord) view() PlannedRun {
	r := rec.Run
	r.State, r.StartedAt, r.StoppedAt = rec.State, rec.StartedAt, rec.StoppedAt
	r.Commands = append([]string(nil), rec.Commands...)
	return r
}

// Run looks at the clock every Every until ctx ends, firing what is due.
func (p *Planner) Run(ctx context.Context) error {
	t := time.NewTicker(p.o.Every)
	defer t.Stop()
	p.Tick()
	for {
		select {
		case <-ctx.Done():
			return p.saveLearning()
		case <-t.C:
			p.Tick()
		}
	}
}

// Tick fixes the runs whose shift comes within MaxLeadTime and WarnAhead, starts and stops what is
// due at the planner's clock, and writes what changed. Run calls it; tests
// call it after moving the clock.
func (p *Planner) Tick() {
	p.tickMu.Lock()
	defer p.tickMu.Unlock()
	now := p.o.Now()

	crews, pol, version := p.o.Crews.snapshot()
	// Local dates of yesterday to tomorrow, wide enough for every zone;
	// computed again when the day or the crews change.
	d := now.UTC()
	from := time.Date(d.Year(), d.Month(), d.Day()-1, 0, 0, 0, 0, time.UTC)
	if p.cands == nil || p.candsVersion != version || !p.candsFrom.Equal(from) {
		p.cands = p.candidates(crews, from, from.AddDate(0, 0, 3), nil)
		p.candsVersion, p.candsFrom = version, from
	}
	cands := p.cands
	ix := p.indexACs()
	live := map[string]bool{}

	// Fix the runs whose start comes within WarnAhead.
	for _, c := range cands {
		live[c.id] = true
		p.mu.Lock()
		rec, fixed := p.ledger[c.id]
		p.mu.Unlock()
		if fixed {
			if rec.State == RunCancelled {
				p.setState(rec, RunPlanned, "") // its crew came back
			}
			continue
		}
		if now.Before(c.shift.Add(-MaxLeadTime - p.o.WarnAhead)) {
			continue // not yet: the weather and what is learned may change
		}
		sp := pol.For(c.station)
		if !now.Before(c.shift) && (c.shift.Before(c.updated) ||
			!now.Before(c.shift.Add(time.Duration(sp.RestMin)*time.Minute))) {
			// A shift before its timetable was imported, or one whose rest
			// window is over.
			continue
		}
		r := p.compute(c, sp, ix, now)
		if r.Action == ActionNone && r.OutdoorC == nil && len(r.Devices) > 0 && !sp.Off &&
			now.Before(c.shift.Add(-MinLeadTime)) {
			continue // no weather yet: wait for the ACs to report while there is time
		}
		if !now.Before(c.shift) && r.Action != ActionNone {
			// First seen after its shift began (the server was down, or
			// the clock jumped): too late to be worth anything.
			r.State = RunMissed
			p.fix(r, OutcomeMissed)
			p.notify(NoticePlanMissed, r.ID, r.Station, now, r)
			continue
		}
		state, outcome := RunPlanned, ""
		if r.Action == ActionNone {
			state, outcome = RunNotNeeded, OutcomeNotNeeded
		}
		r.State = state
		rec = p.fix(r, outcome)
		p.warn(rec, r.Warnings, now)
	}

	// Start and stop what is due, when there is something to send
	// commands with.
	if p.o.Commands == nil {
		p.prune(now)
		return
	}
	p.mu.Lock()
	recs := make([]*runRecord, 0, len(p.ledger))
	for _, rec := range p.ledger {
		recs = append(recs, rec)
	}
	p.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return recs[i].Run.Shift.Before(recs[j].Run.Shift) })
	for _, rec := range recs {
		p.step(rec, now, live, ix)
	}
	p.prune(now)
	// What is learned changes with every AC report: written every few
	// seconds of wall time, and when Run ends.
	if time.Since(p.savedAt) >= learnSaveEvery {
		p.savedAt = time.Now()
		if err := p.saveLearning(); err != nil {
			p.log.Error("write what the planner learned", "err", err)
		}
	}
}

// learnSaveEvery is how often, in wall time, learning is written.
const learnSaveEvery = 5 * time.Second

// step moves one fixed run on at now.
func (p *Planner) step(rec *runRecord, now time.Time, live map[string]bool, ix acIndex) {
	r := rec.Run
	switch rec.State {
	case RunPlanned:
		switch {
		case !live[r.ID] && now.Before(r.Start):
			p.setState(rec, RunCancelled, OutcomeCancelled)
		case now.Before(r.Start):
			if early, why := p.earlyStart(r, now); early {
				p.log.Info("planned run starts early", "run", r.ID, "station", r.Station, "why", why)
				p.start(rec, now, ix)
			}
		case !now.Before(r.Shift):
			p.setState(rec, RunMissed, OutcomeMissed)
			p.notify(NoticePlanMissed, r.ID, r.Station, now, rec.view())
		default:
			p.start(rec, now, ix)
		}
	case RunStarted, RunHeld:
		if now.Before(r.Stop) {
			return
		}
		people := 0
		if p.o.Occupancy != nil {
			people = p.o.Occupancy(r.Station)
		}
		if people > 0 && now.Before(r.Stop.Add(p.o.MaxHold)) {
			if rec.State != RunHeld {
				p.setState(rec, RunHeld, OutcomeHeld)
				p.log.Info("planned run held for people inside", "run", r.ID, "station", r.Station,
					"people", people)
			}
			return
		}
		p.stop(rec, now)
	}
}

// start sends the start commands of a run.
func (p *Planner) start(rec *runRecord, now time.Time, ix acIndex) {
	r := rec.Run
	p.warn(rec, p.warnings(r.Station, r, 0, ix), now)
	outcome := OutcomeStarted
	if now.Sub(r.Start) > 2*p.o.Every+time.Minute {
		outcome = OutcomeStartedLate
	}
	// Written first: a crash after this does not start the run twice.
	p.mu.Lock()
	rec.State, rec.StartedAt = RunStarted, now
	p.mu.Unlock()
	if err := p.write(rec); err != nil {
		p.log.Error("write run ledger", "run", r.ID, "err", err)
	}
	ttl := max(r.Shift.Sub(now), time.Minute)
	sent, stopping := 0, false
	for _, dev := range r.Devices {
		id, err := p.o.Commands.IssueCommand(CommandRequest{
			Device: dev, Name: schemas.CmdACSet,
			Args:   map[string]any{"power": true, "mode": r.Action, "setpoint_c": r.TargetC},
			Issuer: "schedule:" + r.ID, TTL: ttl,
			Reason: fmt.Sprintf("%s to %g °C for the shift at %s", r.Action, r.TargetC,
				r.Shift.Format("15:04 -07:00")),
		})
		if errors.Is(err, ErrCommandsStopped) {
			stopping = true
			break
		}
		if err != nil {
			p.log.Warn("planned run: start command refused", "run", r.ID, "device", dev, "err", err)
			continue
		}
		sent++
		p.mu.Lock()
		rec.Commands = append(rec.Commands, id)
		p.mu.Unlock()
	}
	if sent == 0 && stopping {
		// The server is shutting down: the run is still to do, late, at
		// the next start.
		p.mu.Lock()
		rec.State, rec.StartedAt = RunPlanned, time.Time{}
		p.mu.Unlock()
		if err := p.write(rec); err != nil {
			p.log.Error("write run ledger", "run", r.ID, "err", err)
		}
		return
	}
	if sent == 0 {
		p.setState(rec, RunFailed, OutcomeFailed)
		p.warn(rec, []string{"no AC took the start command"}, now)
		return
	}
	if err := p.write(rec); err != nil {
		p.log.Error("write run ledger", "run", r.ID, "err", err)
	}
	p.runs.WithLabelValues(outcome).Inc()
	p.log.Info("planned run started", "run", r.ID, "station", r.Station, "action", r.Action,
		"target_c", r.TargetC, "late", outcome == OutcomeStartedLate)
	p.notify(NoticePlanStarted, r.ID, r.Station, now, rec.view())
}

// stop ends a run: the ACs are switched off unless another run of the
// station is on, which then owns them.
func (p *Planner) stop(rec *runRecord, now time.Time) {
	r := rec.Run
	p.mu.Lock()
	p.noteWeak(rec)
	handedOver := false
	for _, o := range p.ledger {
		if o != rec && o.Run.Station == r.Station && (o.State == RunStarted || o.State == RunHeld) &&
			now.Before(o.Run.Stop.Add(p.o.MaxHold)) {
			handedOver = true
		}
	}
	rec.State, rec.StoppedAt = RunStopped, now
	p.mu.Unlock()
	if err := p.write(rec); err != nil {
		p.log.Error("write run ledger", "run", r.ID, "err", err)
	}
	p.runs.WithLabelValues(OutcomeStopped).Inc()
	if handedOver {
		return
	}
	for _, dev := range r.Devices {
		id, err := p.o.Commands.IssueCommand(CommandRequest{
			Device: dev, Name: schemas.CmdACSet, Args: map[string]any{"power": false},
			Issuer: "schedule:" + r.ID, TTL: 15 * time.Minute,
			Reason: "rest window after the shift at " + r.Shift.Format("15:04 -07:00") + " is over",
		})
		if err != nil {
			p.log.Warn("planned run: stop command refused", "run", r.ID, "device", dev, "err", err)
			continue
		}
		p.mu.Lock()
		rec.Commands = append(rec.Commands, id)
		p.mu.Unlock()
	}
	if err := p.write(rec); err != nil {
		p.log.Error("write run ledger", "run", r.ID, "err", err)
	}
	p.log.Info("planned run stopped", "run", r.ID, "station", r.Station)
	p.notify(NoticePlanStopped, r.ID, r.Station, now, rec.view())
}

// fix writes a computed run into the ledger.
func (p *Planner) fix(r PlannedRun, outcome string) *runRecord {
	rec := &runRecord{Run: r, State: r.State}
	p.mu.Lock()
	p.ledger[r.ID] = rec
	p.mu.Unlock()
	if err := p.write(rec); err != nil {
		p.log.Error("write run ledger", "run", r.ID, "err", err)
	}
	if outcome != "" {
		p.runs.WithLabelValues(outcome).Inc()
	}
	return rec
}

func (p *Planner) setState(rec *runRecord, state, outcome string) {
	p.mu.Lock()
	rec.State = state
	p.mu.Unlock()
	if err := p.write(rec); err != nil {
		p.log.Error("write run ledger", "run", rec.Run.ID, "err", err)
	}
	if outcome != "" {
		p.runs.WithLabelValues(outcome).Inc()
	}
}

// warn raises each warning of a run once, as a notice, and keeps it on the
// run.
func (p *Planner) warn(rec *runRecord, warnings []string, now time.Time) {
	var fresh []string
	p.mu.Lock()
	for _, w := range warnings {
		if !containsString(rec.Warned, w) {
			rec.Warned = append(rec.Warned, w)
			fresh = append(fresh, w)
		}
		if !containsString(rec.Run.Warnings, w) {
			rec.Run.Warnings = append(rec.Run.Warnings, w)
		}
	}
	p.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	if err := p.write(rec); err != nil {
		p.log.Error("write run ledger", "run", rec.Run.ID, "err", err)
	}
	for _, w := range fresh {
		p.log.Warn("planned run may not reach its target", "run", rec.Run.ID,
			"station", rec.Run.Station, "warning", w)
		p.notify(NoticePlanWarning, rec.Run.ID+":"+w, rec.Run.Station, now, map[string]any{
			"run": rec.view(), "warning": w})
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (p *Planner) notify(typ, key, station string, at time.Time, data any) {
	if p.o.Notifier == nil {
		return
	}
	p.o.Notifier.Notify(Notice{Type: typ, Key: typ + ":" + key, Station: station, At: at, Data: data})
}

// write stores one run record.
func (p *Planner) write(rec *runRecord) error {
	p.mu.Lock()
	rec.dirty = false
	buf, err := json.Marshal(rec)
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return p.o.DB.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPlanRuns).Put([]byte(rec.Run.ID), buf)
	})
}

// prune drops finished runs older than ledgerKeep, and writes records that
// learning changed.
func (p *Planner) prune(now time.Time) {
	var drop []string
	var dirty []*runRecord
	p.mu.Lock()
	for id, rec := range p.ledger {
		if now.Sub(rec.Run.Shift) > ledgerKeep {
			drop = append(drop, id)
			delete(p.ledger, id)
		} else if rec.dirty {
			dirty = append(dirty, rec)
		}
	}
	p.mu.Unlock()
	for _, rec := range dirty {
		if err := p.write(rec); err != nil {
			p.log.Error("write run ledger", "run", rec.Run.ID, "err", err)
		}
	}
	if len(drop) == 0 {
		return
	}
	err := p.o.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPlanRuns)
		for _, id := range drop {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		p.log.Error("prune run ledger", "err", err)
	}
}
