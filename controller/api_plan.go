package controller

import (
	"errors"
	"net/http"
	"slices"

	"github.com/waystation/waystation/devices"
)

// handlePlan adds the routes of crews and the plan when they are
// configured.
func (a *API) handlePlan() {
	if a.o.Crews != nil {
		a.handle("GET /api/v1/crews", PermRead, a.listCrews)
		a.handle("POST /api/v1/crews", PermSchedule, a.importCrews)
		a.handle("DELETE /api/v1/crews/{id}", PermSchedule, a.deleteCrew)
	}
	if a.o.Planner != nil {
		a.handle("GET /api/v1/plan", PermRead, a.plan)
	}
}

// CrewList is the answer of GET /api/v1/crews.
type CrewList struct {
	Crews    []Crew   `json:"crews"`
	Policies Policies `json:"policies"`
}

// CrewsFile is the body of POST /api/v1/crews: a crews file as text.
type CrewsFile struct {
	File    string `json:"file,omitempty"` // the file's name, for messages
	Content string `json:"content"`
}

// CrewsImportError is the body of a refused import: every problem, with
// its line.
type CrewsImportError struct {
	Error    string            `json:"error"`
	Problems []devices.Problem `json:"problems"`
}

func (a *API) listCrews(w http.ResponseWriter, r *http.Request, op Operator) {
	visible := a.visibleStations(op)
	out := CrewList{Crews: []Crew{}, Policies: a.o.Crews.Policies()}
	for _, cr := range a.o.Crews.List() {
		if a.crewVisible(cr, visible) {
			out.Crews = append(out.Crews, cr)
		}
	}
	for st := range out.Policies.Stations {
		if _, ok := visible[st]; !ok {
			delete(out.Policies.Stations, st)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// crewVisible: a crew is seen by operators who see one of its stations.
func (a *API) crewVisible(cr Crew, visible map[string]devices.Station) bool {
	for _, st := range cr.Stations {
		if _, ok := visible[st]; ok {
			return true
		}
	}
	return false
}

func (a *API) importCrews(w http.ResponseWriter, r *http.Request, op Operator) {
	var in CrewsFile
	if err := readJSON(w, r, &in); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	known := func(id string) bool {
		_, err := a.o.Registry.Station(id)
		return err == nil
	}
	tt, err := ParseTimetable(in.File, []byte(in.Content), known)
	if ie, ok := errors.AsType[*devices.ImportError](err); ok {
		writeJSON(w, http.StatusBadRequest, CrewsImportError{Error: ie.Error(), Problems: ie.Problems})
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}

	// Scope: every station a crew of the file rests at (or rested at, for
	// a crew it replaces) and every station policy it sets; the county
	// defaults only for an operator of every organisation.
	stations := []string{}
	for _, cr := range tt.Crews {
		stations = append(stations, cr.Stations...)
		if old, ok := a.o.Crews.Get(cr.ID); ok {
			stations = append(stations, old.Stations...)
		}
	}
	for st := range tt.Stations {
		stations = append(stations, st)
	}
	if tt.Defaults != nil && !op.AllOrgs() {
		a.deny(w, r, op, DeniedScope, "the county-wide defaults need an operator of every "+
			"organisation (scope *)")
		return
	}
	slices.Sort(stations)
	for _, id := range slices.Compact(stations) {
		st, err := a.o.Registry.Station(id)
		if err != nil {
			continue // a crew being replaced may name a station since removed
		}
		if !a.allowStation(w, r, op, st) {
			return
		}
	}

	if err := a.o.Crews.Import(tt); err != nil {
		if errors.Is(err, devices.ErrInvalid) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.log.Info("crews imported", "crews", len(tt.Crews), "file", in.File, "by", op.Name)
	out := CrewList{Crews: []Crew{}, Policies: a.o.Crews.Policies()}
	for _, cr := range tt.Crews {
		if stored, ok := a.o.Crews.Get(cr.ID); ok {
			out.Crews = append(out.Crews, stored)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) deleteCrew(w http.ResponseWriter, r *http.Request, op Operator) {
	cr, ok := a.o.Crews.Get(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "no crew "+r.PathValue("id"))
		return
	}
	for _, id := range cr.Stations {
		if st, err := a.o.Registry.Station(id); err == nil && !a.allowStation(w, r, op, st) {
			return
		}
	}
	if _, err := a.o.Crews.Delete(cr.ID); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.log.Info("crew deleted", "crew", cr.ID, "by", op.Name)
	writeJSON(w, http.StatusOK, cr)
}

// plan answers GET /api/v1/plan?date=YYYY-MM-DD&station=S: the runs of
// that date (default today) at the stations of the scope.
func (a *API) plan(w http.ResponseWriter, r *http.Request, op Operator) {
	q := r.URL.Query()
	visible := a.visibleStations(op)
	keep := func(id string) bool { _, ok := visible[id]; return ok }
	if id := q.Get("station"); id != "" {
		st, err := a.o.Registry.Station(id)
		if err != nil {
			writeRegistryError(w, err)
			return
		}
		if !a.allowStation(w, r, op, st) {
			return
		}
		keep = keepStations(id)
	}
	p, err := a.o.Planner.Plan(q.Get("date"), keep)
	if errors.Is(err, ErrPlanDate) {
		writeError(w, http.StatusBadRequest, "date: "+err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, p)
}
