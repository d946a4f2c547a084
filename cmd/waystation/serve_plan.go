package main

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/waystation/waystation/controller"
)

// planParts are the parts of serve for crews and pre-cooling.
type planParts struct {
	crews   *controller.Crews
	planner *controller.Planner
}

// openPlan builds the crews store and the planner and hooks the planner
// into ingest. It runs after the access parts (occupancy), the notifiers
// and the command sender are open, and before the API.
func (s *server) openPlan() error {
	var err error
	if s.plan.crews, err = controller.NewCrews(s.db, s.clock.Now); err != nil {
		return err
	}
	var occupancy func(string) int
	if s.acc.usage != nil {
		occupancy = func(station string) int { return s.acc.usage.Occupancy(station).People }
	}
	s.plan.planner, err = controller.NewPlanner(controller.PlannerOptions{
		DB: s.db, Registry: s.devs, Twins: s.twin, Crews: s.plan.crews,
		Commands: s.cmds, Notifier: s.notify, Occupancy: occupancy, Location: s.loc,
		// Ten seconds of the controller's clock, at least 50 ms of the wall's.
		Every: max(time.Duration(float64(10*time.Second)/s.o.speed), 50*time.Millisecond),
		Now:   s.clock.Now, Logger: s.log, Registerer: s.reg,
	})
	if err != nil {
		return err
	}
	s.in.Observe(s.plan.planner.Observe)
	return nil
}

// apiOptions gives the API the crews and the planner.
func (p *planParts) apiOptions(o *controller.APIOptions) {
	o.Crews, o.Planner = p.crews, p.planner
}

// runPlan starts the planner in g until ctx ends.
func (s *server) runPlan(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error { return s.plan.planner.Run(ctx) })
}

// demoCrew is the sanitation timetable of the demo county: sweepers change
// shift before dawn, at midday, in the early afternoon and in the evening,
// and rest at every station.
const demoCrew = "sanitation"

// demoTimetable gives the demo county its sanitation crew, unless a crew
// of that id is stored already (a scheduler's change stays).
func (s *server) demoTimetable(stations []string) error {
	if _, ok := s.plan.crews.Get(demoCrew); ok {
		return nil
	}
	return s.plan.crews.Import(controller.Timetable{Crews: []controller.Crew{{
		ID: demoCrew, Name: "County sanitation crews", TimeZone: "Asia/Shanghai",
		Stations: stations,
		Week:     controller.DailyWeek("05:30", "11:30", "14:00", "17:30"),
		Exceptions: []controller.Exception{{Date: "10-26", Note: "sanitation workers' day",
			Shifts: []string{"05:30", "17:30"}}},
	}}})
}
