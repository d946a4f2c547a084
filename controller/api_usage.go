package controller

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// handleUsage adds the usage route when usage is configured.
func (a *API) handleUsage() {
	if a.o.Usage != nil {
		a.handle("GET /api/v1/usage", PermRead, a.usage)
	}
}

// defaultUsageDays is the period of a usage query that gives no start.
const defaultUsageDays = 7

// usage answers GET /api/v1/usage?station=S&from=F&to=T&by=hour|day. from
// and to are dates (YYYY-MM-DD, local, to inclusive) or RFC 3339 times (to
// exclusive); by default the last seven days up to today.
func (a *API) usage(w http.ResponseWriter, r *http.Request, op Operator) {
	q := r.URL.Query()
	var stations []string
	if id := q.Get("station"); id != "" {
		st, err := a.o.Registry.Station(id)
		if err != nil {
			writeRegistryError(w, err)
			return
		}
		if !a.allowStation(w, r, op, st) {
			return
		}
		stations = []string{st.ID}
	} else {
		for _, st := range a.o.Registry.Stations() {
			if op.InScope(st.Org) {
				stations = append(stations, st.ID)
			}
		}
	}

	loc := a.location()
	now := a.now().In(loc)
	to := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, loc)
	if s := q.Get("to"); s != "" {
		t, isDate, err := parseWhen(s, loc)
		if err != nil {
			writeError(w, http.StatusBadRequest, "to: "+err.Error())
			return
		}
		if to = t; isDate {
			to = t.AddDate(0, 0, 1) // the whole day
		}
	}
	from := to.AddDate(0, 0, -defaultUsageDays)
	if s := q.Get("from"); s != "" {
		t, _, err := parseWhen(s, loc)
		if err != nil {
			writeError(w, http.StatusBadRequest, "from: "+err.Error())
			return
		}
		from = t
	}
	by := q.Get("by")
	if by == "" {
		by = ByDay
	}

	rep, err := a.o.Usage.Report(stations, from, to, by)
	switch {
	case errors.Is(err, ErrUsageRange):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// parseWhen reads a date (YYYY-MM-DD, midnight in loc) or an RFC 3339
// time, and says which it was.
func parseWhen(s string, loc *time.Location) (time.Time, bool, error) {
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return t, true, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, false, nil
	}
	return time.Time{}, false, fmt.Errorf("%q: want a date YYYY-MM-DD or a time like "+
		"2025-07-15T08:00:00+08:00", s)
}

// location is the time zone of reports and opening hours.
func (a *API) location() *time.Location {
	if a.o.Location != nil {
		return a.o.Location
	}
	return time.Local
}

// now is the API's clock.
func (a *API) now() time.Time {
	if a.o.Now != nil {
		return a.o.Now()
	}
	return time.Now()
}
