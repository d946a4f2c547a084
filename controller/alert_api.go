package controller

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// handleAlerts adds the routes of alerts and silences when alerts are on.
//
// Monitors and admins acknowledge, resolve and silence; every operator
// reads. Each sees and touches only the alerts and silences of the
// stations in its scope; a silence of a rule on every station needs an
// operator of every organisation.
func (a *API) handleAlerts() {
	if a.o.Alerts == nil {
		return
	}
	a.handle("GET /api/v1/alerts", PermRead, a.listAlerts)
	a.handle("GET /api/v1/alerts/{id}", PermRead, a.getAlert)
	a.handle("POST /api/v1/alerts/{id}/ack", PermAcknowledge, a.ackAlert)
	a.handle("POST /api/v1/alerts/{id}/resolve", PermAcknowledge, a.resolveAlert)
	a.handle("GET /api/v1/silences", PermRead, a.listSilences)
	a.handle("POST /api/v1/silences", PermAcknowledge, a.addSilence)
	a.handle("DELETE /api/v1/silences/{id}", PermAcknowledge, a.removeSilence)
}

func (a *API) listAlerts(w http.ResponseWriter, r *http.Request, op Operator) {
	q := r.URL.Query()
	f := AlertFilter{State: q.Get("state"), Severity: q.Get("severity"), Station: q.Get("station"),
		Device: q.Get("device"), Rule: q.Get("rule")}
	if f.State != "" && !slices.Contains(AlertStates, f.State) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("state %q: want one of %s", f.State,
			strings.Join(AlertStates, ", ")))
		return
	}
	if f.Severity != "" && !slices.Contains(Severities, f.Severity) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("severity %q: want one of %s", f.Severity,
			strings.Join(Severities, ", ")))
		return
	}
	if f.Station != "" {
		st, err := a.o.Registry.Station(f.Station)
		if err != nil {
			writeRegistryError(w, err)
			return
		}
		if !a.allowStation(w, r, op, st) {
			return
		}
	}
	if !op.AllOrgs() {
		f.Stations = map[string]bool{}
		for id := range a.visibleStations(op) {
			f.Stations[id] = true
		}
	}
	writeJSON(w, http.StatusOK, a.o.Alerts.List(f))
}

// alertInScope finds an alert and checks that its station is in scope.
func (a *API) alertInScope(w http.ResponseWriter, r *http.Request, op Operator) (Alert, bool) {
	al, err := a.o.Alerts.Get(r.PathValue("id"))
	if err != nil {
		writeAlertError(w, err)
		return Alert{}, false
	}
	org := ""
	if st, err := a.o.Registry.Station(al.Station); err == nil {
		org = st.Org
	}
	if !a.allowOrg(w, r, op, org, "alert "+al.ID+" of station "+al.Station) {
		return Alert{}, false
	}
	return al, true
}

func (a *API) getAlert(w http.ResponseWriter, r *http.Request, op Operator) {
	if al, ok := a.alertInScope(w, r, op); ok {
		writeJSON(w, http.StatusOK, al)
	}
}

// AckRequest is the body of an acknowledgement; the body may be empty.
type AckRequest struct {
	Note string `json:"note"`
}

func (a *API) ackAlert(w http.ResponseWriter, r *http.Request, op Operator) {
	var in AckRequest
	if r.ContentLength != 0 {
		if err := readJSON(w, r, &in); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if len(in.Note) > 1000 {
		writeError(w, http.StatusBadRequest, "note longer than 1000 bytes")
		return
	}
	if _, ok := a.alertInScope(w, r, op); !ok {
		return
	}
	al, err := a.o.Alerts.Acknowledge(r.PathValue("id"), op.Name, strings.TrimSpace(in.Note))
	if err != nil {
		writeAlertError(w, err)
		return
	}
	a.log.Info("alert acknowledged", "alert", al.ID, "rule", al.Rule, "station", al.Station,
		"by", op.Name)
	writeJSON(w, http.StatusOK, al)
}

func (a *API) resolveAlert(w http.ResponseWriter, r *http.Request, op Operator) {
	if _, ok := a.alertInScope(w, r, op); !ok {
		return
	}
	al, err := a.o.Alerts.Resolve(r.PathValue("id"), op.Name)
	if err != nil {
		writeAlertError(w, err)
		return
	}
	a.log.Info("alert resolved", "alert", al.ID, "rule", al.Rule, "station", al.Station,
		"by", op.Name)
	writeJSON(w, http.StatusOK, al)
}

// silenceOrg is the organisation a silence belongs to, and whether it has
// one: a silence of a rule on every station has none.
func (a *API) silenceOrg(s Silence) (string, bool) {
	station := s.Station
	if station == "" && s.Device != "" {
		if d, err := a.o.Registry.Device(s.Device); err == nil {
			station = d.Station
		}
	}
	if station == "" {
		return "", false
	}
	st, _ := a.o.Registry.Station(station)
	return st.Org, true
}

func (a *API) listSilences(w http.ResponseWriter, r *http.Request, op Operator) {
	writeJSON(w, http.StatusOK, a.o.Alerts.Silences(func(s Silence) bool {
		org, ok := a.silenceOrg(s)
		return !ok || op.InScope(org)
	}))
}

// SilenceRequest is the body of a new silence: For (a duration such as
// "2h") or Expires.
type SilenceRequest struct {
	Station string    `json:"station,omitempty"`
	Device  string    `json:"device,omitempty"`
	Rule    string    `json:"rule,omitempty"`
	For     string    `json:"for,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	Reason  string    `json:"reason"`
}

func (a *API) addSilence(w http.ResponseWriter, r *http.Request, op Operator) {
	var in SilenceRequest
	if err := readJSON(w, r, &in); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s := Silence{Station: in.Station, Device: in.Device, Rule: in.Rule, Reason: in.Reason,
		CreatedBy: op.Name, Expires: in.Expires}
	switch {
	case in.For != "" && !in.Expires.IsZero():
		writeError(w, http.StatusBadRequest, "give for or expires, not both")
		return
	case in.For != "":
		d, err := time.ParseDuration(in.For)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("for %q: want a positive duration "+
				"such as 2h or 90m", in.For))
			return
		}
		s.Expires = a.now().Add(d)
	case in.Expires.IsZero():
		writeError(w, http.StatusBadRequest, "give for (a duration such as 2h) or expires")
		return
	}
	if org, ok := a.silenceOrg(s); ok {
		if !a.allowOrg(w, r, op, org, "a silence of station "+s.Station+s.Device) {
			return
		}
	} else if !op.AllOrgs() && (s.Station == "" && s.Device == "") {
		a.deny(w, r, op, DeniedScope, fmt.Sprintf("a silence of rule %s on every station needs an "+
			"operator of every organisation; operator %s has %s: give a station or device",
			s.Rule, op.Name, strings.Join(op.Orgs, ", ")))
		return
	}
	s, err := a.o.Alerts.AddSilence(s)
	if err != nil {
		writeAlertError(w, err)
		return
	}
	a.log.Info("silence added", "silence", s.ID, "station", s.Station, "device", s.Device,
		"rule", s.Rule, "expires", s.Expires, "by", op.Name)
	writeJSON(w, http.StatusCreated, s)
}

func (a *API) removeSilence(w http.ResponseWriter, r *http.Request, op Operator) {
	s, err := a.o.Alerts.GetSilence(r.PathValue("id"))
	if err != nil {
		writeAlertError(w, err)
		return
	}
	if org, ok := a.silenceOrg(s); ok {
		if !a.allowOrg(w, r, op, org, "silence "+s.ID) {
			return
		}
	} else if !op.AllOrgs() {
		a.deny(w, r, op, DeniedScope, "silence "+s.ID+" covers every station; only an operator "+
			"of every organisation may remove it")
		return
	}
	if s, err = a.o.Alerts.RemoveSilence(s.ID); err != nil {
		writeAlertError(w, err)
		return
	}
	a.log.Info("silence removed", "silence", s.ID, "by", op.Name)
	writeJSON(w, http.StatusOK, s)
}

func writeAlertError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrAlertNotFound), errors.Is(err, ErrSilenceNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrAlertState):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrInvalidSilence):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
