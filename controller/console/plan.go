package console

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/waystation/waystation/controller"
)

// planView is the data of the plan page.
type planView struct {
	Date, Prev, Next string
	By               string // "station" or "crew"
	Plan             controller.Plan
	Groups           []planGroup
	Counts           map[string]int // runs by action
}

// planGroup is the runs of one station or one crew.
type planGroup struct {
	Name string
	Runs []controller.PlannedRun
}

// planPage shows a date's pre-cooling (and pre-heating) runs county-wide,
// by station or by crew; tomorrow by default.
func (c *Console) planPage(rq *request) {
	q := rq.r.URL.Query()
	now := c.now()
	date := q.Get("date")
	if date == "" {
		date = now.AddDate(0, 0, 1).Format(time.DateOnly)
	}
	day, err := time.ParseInLocation(time.DateOnly, date, c.o.Location)
	if err != nil {
		c.failFor(rq, http.StatusBadRequest, "Date "+date+": want YYYY-MM-DD.")
		return
	}
	v := planView{Date: date, By: q.Get("by"), Counts: map[string]int{},
		Prev: day.AddDate(0, 0, -1).Format(time.DateOnly),
		Next: day.AddDate(0, 0, 1).Format(time.DateOnly)}
	if v.By != "crew" {
		v.By = "station"
	}
	scope := c.scopeStations(rq.op)
	v.Plan, err = c.o.Planner.Plan(date, func(st string) bool { return scope == nil || scope[st] })
	if errors.Is(err, controller.ErrPlanDate) {
		c.failFor(rq, http.StatusBadRequest, err.Error())
		return
	} else if err != nil {
		c.failFor(rq, http.StatusInternalServerError, err.Error())
		return
	}
	byName := map[string]int{}
	add := func(name string, r controller.PlannedRun) {
		i, ok := byName[name]
		if !ok {
			i = len(v.Groups)
			byName[name] = i
			v.Groups = append(v.Groups, planGroup{Name: name})
		}
		v.Groups[i].Runs = append(v.Groups[i].Runs, r)
	}
	for _, r := range v.Plan.Runs {
		v.Counts[r.Action]++
		if v.By == "crew" {
			for _, crew := range r.Crews {
				add(crew, r)
			}
			continue
		}
		add(r.Station, r)
	}
	slices.SortStableFunc(v.Groups, func(a, b planGroup) int { return strings.Compare(a.Name, b.Name) })
	c.render(rq, http.StatusOK, "plan", view{Title: "Plan for " + date, Nav: "plan", Data: v})
}

// stationPlan is a station's runs today.
func (c *Console) stationPlan(station string) []controller.PlannedRun {
	if c.o.Planner == nil {
		return nil
	}
	p, err := c.o.Planner.Plan("", func(st string) bool { return st == station })
	if err != nil {
		c.log.Warn("station plan", "station", station, "err", err)
	}
	return p.Runs
}
