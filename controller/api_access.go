package controller

import (
	"errors"
	"net/http"
	"strings"
)

// handleAccess adds the routes of door access: worker credentials and
// stations' access rules. Each group is there when its part is configured.
func (a *API) handleAccess() {
	if a.o.Credentials != nil {
		a.handle("GET /api/v1/credentials", PermCredentialsRead, a.listCredentials)
		a.handle("POST /api/v1/credentials", PermCredentials, a.addCredential)
		a.handle("DELETE /api/v1/credentials/{id}", PermCredentials, a.revokeCredential)
	}
	if a.o.Rules != nil {
		a.handle("GET /api/v1/stations/{id}/access", PermRead, a.getStationAccess)
		a.handle("PUT /api/v1/stations/{id}/access", PermStationAccess, a.setStationAccess)
	}
	if a.o.AllowLists != nil {
		a.handle("GET /api/v1/access/stale", PermRead, a.staleTerminals)
	}
}

// NewCredential is the answer to issuing a credential: the credential and
// its token, which is shown this once.
type NewCredential struct {
	Credential
	Token string `json:"token"`
}

func (a *API) listCredentials(w http.ResponseWriter, r *http.Request, op Operator) {
	org := r.URL.Query().Get("org")
	if org != "" && !a.allowOrg(w, r, op, org, "the credentials of "+org) {
		return
	}
	list := a.o.Credentials.List(func(c Credential) bool {
		return op.InScope(c.Org) && (org == "" || c.Org == org)
	})
	writeJSON(w, http.StatusOK, list)
}

func (a *API) addCredential(w http.ResponseWriter, r *http.Request, op Operator) {
	var in struct {
		Org     string   `json:"org"`
		Worker  string   `json:"worker"`
		Methods []string `json:"methods"`
	}
	if err := readJSON(w, r, &in); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	in.Org = strings.TrimSpace(in.Org)
	if in.Org != "" && !a.allowOrg(w, r, op, in.Org, "a credential of "+in.Org) {
		return
	}
	token, cr, err := a.o.Credentials.Issue(in.Org, in.Worker, in.Methods)
	if err != nil {
		writeCredentialError(w, err)
		return
	}
	a.log.Info("credential issued", "credential", cr.ID, "org", cr.Org, "by", op.Name)
	writeJSON(w, http.StatusCreated, NewCredential{Credential: cr, Token: token})
}

func (a *API) revokeCredential(w http.ResponseWriter, r *http.Request, op Operator) {
	cr, err := a.o.Credentials.Get(r.PathValue("id"))
	if err != nil {
		writeCredentialError(w, err)
		return
	}
	if !a.allowOrg(w, r, op, cr.Org, "credential "+cr.ID) {
		return
	}
	if cr, err = a.o.Credentials.Revoke(cr.ID); err != nil {
		writeCredentialError(w, err)
		return
	}
	a.log.Info("credential revoked", "credential", cr.ID, "org", cr.Org, "by", op.Name)
	writeJSON(w, http.StatusOK, cr)
}

func writeCredentialError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrInvalidCredential):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrCredentialNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// StationAccessView is a station's access rules with the state of its
// allow-list.
type StationAccessView struct {
	StationRules
	AllowList *AllowListStatus `json:"allow_list,omitempty"`
}

func (a *API) getStationAccess(w http.ResponseWriter, r *http.Request, op Operator) {
	st, err := a.o.Registry.Station(r.PathValue("id"))
	if err != nil {
		writeRegistryError(w, err)
		return
	}
	if !a.allowStation(w, r, op, st) {
		return
	}
	writeJSON(w, http.StatusOK, a.stationAccess(st.ID, st.Org))
}

func (a *API) setStationAccess(w http.ResponseWriter, r *http.Request, op Operator) {
	st, err := a.o.Registry.Station(r.PathValue("id"))
	if err != nil {
		writeRegistryError(w, err)
		return
	}
	if !a.allowStation(w, r, op, st) {
		return
	}
	var u RulesUpdate
	if err := readJSON(w, r, &u); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rules, err := a.o.Rules.Update(st.ID, st.Org, u)
	if err != nil {
		writeCredentialError(w, err)
		return
	}
	a.log.Info("station access rules changed", "station", st.ID, "methods", rules.Methods,
		"open_to_all", rules.OpenToAll, "by", op.Name)
	writeJSON(w, http.StatusOK, a.stationAccess(st.ID, st.Org))
}

func (a *API) stationAccess(station, org string) StationAccessView {
	v := StationAccessView{StationRules: a.o.Rules.Get(station, org)}
	if a.o.AllowLists != nil {
		if s, ok := a.o.AllowLists.Status(station); ok {
			v.AllowList = &s
		}
	}
	return v
}

// staleTerminals lists the door terminals within scope whose allow-list
// lacks a change older than the stale limit.
func (a *API) staleTerminals(w http.ResponseWriter, r *http.Request, op Operator) {
	visible := a.visibleStations(op)
	out := []TerminalStatus{}
	for _, ts := range a.o.AllowLists.StaleTerminals() {
		if _, ok := visible[ts.Station]; ok {
			out = append(out, ts)
		}
	}
	writeJSON(w, http.StatusOK, out)
}
