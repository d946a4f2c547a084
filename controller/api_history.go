package controller

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/waystation/waystation/devices"
)

// Limits of a history query.
const (
	defaultHistorySpan  = 24 * time.Hour
	defaultHistoryLimit = 10000
	maxHistoryLimit     = 100000
)

// handleHistory adds the telemetry history route when history is kept.
func (a *API) handleHistory() {
	if a.o.History != nil {
		a.handle("GET /api/v1/devices/{id}/history", PermRead, a.deviceHistory)
	}
}

// HistoryPage is the answer to a history query.
type HistoryPage struct {
	Device string    `json:"device"`
	From   time.Time `json:"from"` // included
	To     time.Time `json:"to"`   // excluded
	Step   string    `json:"step,omitempty"`
	// Samples are the device's reported states, oldest first.
	Samples []devices.Sample `json:"samples"`
	// Next, when the limit cut the answer short, is the from of the next
	// page.
	Next *time.Time `json:"next,omitempty"`
}

// deviceHistory answers GET /api/v1/devices/{id}/history?from=&to=&step=&limit=.
// from and to are RFC 3339 times (or dates, to included); by default the
// last 24 hours. step (a duration such as 1m) thins the samples to one per
// step; limit (default 10,000, at most 100,000) bounds them, oldest first.
func (a *API) deviceHistory(w http.ResponseWriter, r *http.Request, op Operator) {
	d, err := a.o.Registry.Device(r.PathValue("id"))
	if err != nil {
		writeRegistryError(w, err)
		return
	}
	if st, err := a.o.Registry.Station(d.Station); err == nil && !a.allowStation(w, r, op, st) {
		return
	}

	q := r.URL.Query()
	loc := a.location()
	hq := devices.HistoryQuery{To: a.now(), Limit: defaultHistoryLimit}
	if s := q.Get("to"); s != "" {
		t, isDate, err := parseWhen(s, loc)
		if err != nil {
			writeError(w, http.StatusBadRequest, "to: "+err.Error())
			return
		}
		if hq.To = t; isDate {
			hq.To = t.AddDate(0, 0, 1) // the whole day
		}
	}
	hq.From = hq.To.Add(-defaultHistorySpan)
	if s := q.Get("from"); s != "" {
		if hq.From, _, err = parseWhen(s, loc); err != nil {
			writeError(w, http.StatusBadRequest, "from: "+err.Error())
			return
		}
	}
	if !hq.To.After(hq.From) {
		writeError(w, http.StatusBadRequest, "to: not after from")
		return
	}
	if s := q.Get("step"); s != "" {
		if hq.Step, err = time.ParseDuration(s); err != nil || hq.Step <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("step %q: want a duration such as 30s or 5m", s))
			return
		}
	}
	if s := q.Get("limit"); s != "" {
		if hq.Limit, err = strconv.Atoi(s); err != nil || hq.Limit < 1 || hq.Limit > maxHistoryLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want 1 to %d", s, maxHistoryLimit))
			return
		}
	}

	samples, err := a.o.History.Read(d.ID, hq)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	page := HistoryPage{Device: d.ID, From: hq.From, To: hq.To, Samples: samples}
	if hq.Step > 0 {
		page.Step = hq.Step.String()
	}
	if len(samples) == hq.Limit {
		next := samples[len(samples)-1].At.Add(max(hq.Step, time.Nanosecond))
		page.Next = &next
	}
	writeJSON(w, http.StatusOK, page)
}
