package controller

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waystation/waystation/devices"
)

// Every API call is checked twice: the operator's role must allow the kind
// of call (the Permission given with the route), and what the call touches
// must lie in the operator's scope. A refusal is a 403 whose error says
// which, counted in waystation_api_denied_total{reason}.
//
// A station of an organisation outside the scope is refused with 403, not
// hidden behind a 404: station ids are public anyway (the nearest-station
// search serves them to anyone), and a 403 tells an operator to ask for a
// wider scope rather than to look for a typo. Lists are filtered instead:
// they show only what is in scope.

func newDeniedCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_api_denied_total",
		Help: "API calls refused with 403, by reason: role or scope.",
	}, []string{"reason"})
	for _, r := range []string{DeniedRole, DeniedScope} {
		c.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	return c, nil
}

// deny answers 403 and counts the refusal.
func (a *API) deny(w http.ResponseWriter, r *http.Request, op Operator, reason, msg string) {
	a.denied.WithLabelValues(reason).Inc()
	a.log.Debug("api call refused", "operator", op.Name, "role", op.Role, "reason", reason,
		"method", r.Method, "path", r.URL.Path)
	writeError(w, http.StatusForbidden, msg)
}

// denyRole refuses a call the operator's role does not allow.
func (a *API) denyRole(w http.ResponseWriter, r *http.Request, op Operator, p Permission) {
	var roles []string
	for _, role := range Roles {
		if (Operator{Role: role}).Can(p) {
			roles = append(roles, role)
		}
	}
	a.deny(w, r, op, DeniedRole, fmt.Sprintf("operator %s has role %s, which may not %s "+
		"(roles that may: %s)", op.Name, op.Role, permissionVerb[p], strings.Join(roles, ", ")))
}

// permissionVerb says what a permission allows, for refusals.
var permissionVerb = map[Permission]string{
	PermRead:            "read stations and devices",
	PermAcknowledge:     "acknowledge alerts",
	PermSchedule:        "change timetables",
	PermRegister:        "add stations or register devices",
	PermStationAccess:   "change a station's access rules",
	PermCredentialsRead: "list worker credentials",
	PermCredentials:     "issue or revoke worker credentials",
	PermOperators:       "manage operators",
	PermSwitchAC:        "switch an AC",
	PermCommand:         "send this command (only ac.set and device.ping are open to every role)",
	PermBackup:          "download a backup of the data file",
}

// allowOrg checks that org is in the operator's scope; what names the
// thing that belongs to org, for the refusal.
func (a *API) allowOrg(w http.ResponseWriter, r *http.Request, op Operator, org,
	what string) bool {
	if op.InScope(org) {
		return true
	}
	owner := "organisation " + org
	if org == "" {
		owner = "no organisation (only operators of every organisation may use it)"
	}
	a.deny(w, r, op, DeniedScope, fmt.Sprintf("%s belongs to %s, outside the scope of operator "+
		"%s (%s)", what, owner, op.Name, strings.Join(op.Orgs, ", ")))
	return false
}

// allowStation checks that a station is in the operator's scope.
func (a *API) allowStation(w http.ResponseWriter, r *http.Request, op Operator,
	st devices.Station) bool {
	return a.allowOrg(w, r, op, st.Org, "station "+st.ID)
}

// visibleStations returns the ids of the stations in the operator's scope.
func (a *API) visibleStations(op Operator) map[string]devices.Station {
	out := map[string]devices.Station{}
	for _, st := range a.o.Registry.Stations() {
		if op.InScope(st.Org) {
			out[st.ID] = st
		}
	}
	return out
}
