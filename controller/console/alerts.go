package console

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/waystation/waystation/controller"
)

// alertRow is one alert as the board shows it.
type alertRow struct {
	controller.Alert
	StationName string
	Level       string // the severity, or levelOK
}

// boardView is the data of the alerts board.
type boardView struct {
	Running bool // the alert engine runs on this server
	Alerts  []alertRow
	// Offline lists the stations in scope with a device offline, when the
	// alert engine does not run.
	Offline []stationRow
	// Silences are the silences in force on stations in scope.
	Silences []controller.Silence
	// Durations are the choices of how long to silence a station.
	Durations []string
}

// silenceChoices are how long the board offers to silence a station.
var silenceChoices = []string{"30m", "1h", "2h", "4h", "8h", "24h"}

// openAlerts returns the open alerts in the operator's scope: firing
// before acknowledged, then the most severe, then the oldest.
func (c *Console) openAlerts(op controller.Operator, station string) []alertRow {
	if c.o.Alerts == nil {
		return nil
	}
	names := map[string]string{}
	for _, st := range c.o.Registry.Stations() {
		names[st.ID] = st.Name
	}
	var out []alertRow
	for _, a := range c.o.Alerts.List(controller.AlertFilter{Station: station,
		Stations: c.scopeStations(op)}) {
		if a.Open() {
			out = append(out, alertRow{Alert: a, StationName: names[a.Station], Level: a.Severity})
		}
	}
	slices.SortStableFunc(out, func(a, b alertRow) int {
		return cmp.Or(cmp.Compare(stateRank(a.State), stateRank(b.State)),
			cmp.Compare(levelRank[b.Level], levelRank[a.Level]),
			a.FirstSeen.Compare(b.FirstSeen), strings.Compare(a.ID, b.ID))
	})
	return out
}

func stateRank(s string) int {
	if s == controller.AlertFiring {
		return 0
	}
	return 1
}

// openAlertsByStation returns the open alerts in the operator's scope by
// station.
func (c *Console) openAlertsByStation(op controller.Operator) map[string][]alertRow {
	out := map[string][]alertRow{}
	for _, a := range c.openAlerts(op, "") {
		out[a.Station] = append(out[a.Station], a)
	}
	return out
}

func (c *Console) board(op controller.Operator) boardView {
	v := boardView{Running: c.o.Alerts != nil, Alerts: c.openAlerts(op, ""),
		Durations: silenceChoices}
	if !v.Running {
		for _, row := range c.stationRows(op) {
			if row.Online < row.Devices {
				v.Offline = append(v.Offline, row)
			}
		}
		return v
	}
	scope := c.scopeStations(op)
	now := c.o.Now()
	v.Silences = c.o.Alerts.Silences(func(s controller.Silence) bool {
		return s.Expires.After(now) && s.Station != "" && (scope == nil || scope[s.Station])
	})
	return v
}

func (c *Console) alertsBoard(rq *request) {
	c.render(rq, http.StatusOK, "alerts", view{Title: "Alerts", Nav: "alerts",
		Data: c.board(rq.op), Refresh: true})
}

// alertsFragment is the board alone, which the page fetches again when
// the event stream says something changed.
func (c *Console) alertsFragment(rq *request) {
	c.fragment(rq, "alerts", "board", view{Data: c.board(rq.op)})
}

// alertInScope finds the alert of the path and checks its station.
func (c *Console) alertInScope(rq *request) (controller.Alert, bool) {
	a, err := c.o.Alerts.Get(rq.r.PathValue("id"))
	if err != nil {
		c.failFor(rq, http.StatusNotFound, "There is no alert "+rq.r.PathValue("id")+".")
		return a, false
	}
	st, err := c.o.Registry.Station(a.Station)
	if err != nil {
		st.ID = a.Station // a station since removed: all-organisations operators only
	}
	return a, c.allowStation(rq, st)
}

// ackAlert acknowledges an alert with the form's note.
func (c *Console) ackAlert(rq *request) {
	a, ok := c.alertInScope(rq)
	if !ok {
		return
	}
	note := strings.TrimSpace(rq.r.PostFormValue("note"))
	if len(note) > 1000 {
		c.failFor(rq, http.StatusBadRequest, "The note is longer than 1000 bytes.")
		return
	}
	if _, err := c.o.Alerts.Acknowledge(a.ID, rq.op.Name, note); err != nil {
		c.alertError(rq, err)
		return
	}
	c.log.Info("alert acknowledged", "alert", a.ID, "rule", a.Rule, "station", a.Station,
		"by", rq.op.Name)
	c.back(rq, "#alert-"+a.ID)
}

// resolveAlert resolves an alert.
func (c *Console) resolveAlert(rq *request) {
	a, ok := c.alertInScope(rq)
	if !ok {
		return
	}
	if _, err := c.o.Alerts.Resolve(a.ID, rq.op.Name); err != nil {
		c.alertError(rq, err)
		return
	}
	c.log.Info("alert resolved", "alert", a.ID, "rule", a.Rule, "station", a.Station,
		"by", rq.op.Name)
	c.back(rq, "")
}

// silenceStation silences a station's alerts for a while.
func (c *Console) silenceStation(rq *request) {
	st, err := c.o.Registry.Station(rq.r.PostFormValue("station"))
	if err != nil {
		c.failFor(rq, http.StatusNotFound, "There is no station "+rq.r.PostFormValue("station")+".")
		return
	}
	if !c.allowStation(rq, st) {
		return
	}
	d, err := time.ParseDuration(rq.r.PostFormValue("for"))
	if err != nil || !slices.Contains(silenceChoices, rq.r.PostFormValue("for")) {
		c.failFor(rq, http.StatusBadRequest, "Choose how long to silence the station.")
		return
	}
	reason := strings.TrimSpace(rq.r.PostFormValue("reason"))
	if reason == "" {
		reason = "silenced from the console"
	}
	s, err := c.o.Alerts.AddSilence(controller.Silence{Station: st.ID, Reason: reason,
		CreatedBy: rq.op.Name, Expires: c.o.Now().Add(d)})
	if err != nil {
		c.alertError(rq, err)
		return
	}
	c.log.Info("station silenced", "silence", s.ID, "station", st.ID, "for", d, "by", rq.op.Name)
	c.back(rq, "")
}

// unsilence ends a silence early.
func (c *Console) unsilence(rq *request) {
	s, err := c.o.Alerts.GetSilence(rq.r.PathValue("id"))
	if err != nil {
		c.failFor(rq, http.StatusNotFound, "There is no silence "+rq.r.PathValue("id")+".")
		return
	}
	st, err := c.o.Registry.Station(s.Station)
	if err != nil || s.Station == "" {
		st.ID = s.Station
	}
	if !c.allowStation(rq, st) {
		return
	}
	if _, err := c.o.Alerts.RemoveSilence(s.ID); err != nil {
		c.alertError(rq, err)
		return
	}
	c.back(rq, "")
}

func (c *Console) alertError(rq *request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, controller.ErrAlertNotFound), errors.Is(err, controller.ErrSilenceNotFound):
		code = http.StatusNotFound
	case errors.Is(err, controller.ErrAlertState):
		code = http.StatusConflict
	case errors.Is(err, controller.ErrInvalidSilence):
		code = http.StatusBadRequest
	}
	c.failFor(rq, code, fmt.Sprintf("Not done: %v.", err))
}

// back returns to the page the form was on.
func (c *Console) back(rq *request, anchor string) {
	http.Redirect(rq.w, rq.r, safeNext(rq.r.PostFormValue("back"))+anchor, http.StatusSeeOther)
}
