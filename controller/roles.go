package controller

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Operator roles besides RoleAdmin. A role says which kinds of call an
// operator may make; its scope (Operator.Orgs) says on which stations.
const (
	RoleMonitor    = "monitor"    // watches stations; acknowledges alerts
	RoleScheduler  = "scheduler"  // changes timetables
	RoleTechnician = "technician" // installs devices and stations
)

// Roles lists every role, least powerful first.
var Roles = []string{RoleMonitor, RoleScheduler, RoleTechnician, RoleAdmin}

// AllOrgs, alone in a scope, means every organisation, including stations
// that belong to none.
const AllOrgs = "*"

// Permission names a kind of API call.
type Permission string

// The kinds of API call. Every route of the API needs exactly one of them,
// but for the few that need no token (health, metrics, the nearest-station
// search).
const (
	// PermRead reads stations, devices, twins, usage and access status.
	PermRead Permission = "read"
	// PermAcknowledge acknowledges alerts.
	PermAcknowledge Permission = "acknowledge"
	// PermSchedule changes crews' timetables and schedules.
	PermSchedule Permission = "schedule"
	// PermRegister adds stations and registers devices.
	PermRegister Permission = "register"
	// PermStationAccess changes a station's access rules (methods, open
	// to all).
	PermStationAccess Permission = "station_access"
	// PermCredentialsRead lists worker credentials.
	PermCredentialsRead Permission = "credentials_read"
	// PermCredentials issues and revokes worker credentials.
	PermCredentials Permission = "credentials"
	// PermOperators lists, adds and revokes operators.
	PermOperators Permission = "operators"
	// PermSwitchAC sends ac.set and device.ping: anyone on duty may switch
	// a station's AC.
	PermSwitchAC Permission = "switch_ac"
	// PermCommand sends any command: unlocking doors, lock modes, charger
	// slots, reboots.
	PermCommand Permission = "command"
	// PermBackup downloads a copy of the whole data file.
	PermBackup Permission = "backup"
)

// rolePermissions is who may do what.
var rolePermissions = map[string][]Permission{
	RoleMonitor:   {PermRead, PermAcknowledge, PermSwitchAC},
	RoleScheduler: {PermRead, PermSchedule, PermSwitchAC},
	RoleTechnician: {PermRead, PermRegister, PermStationAccess,
		PermCredentialsRead, PermSwitchAC, PermCommand},
	RoleAdmin: {PermRead, PermAcknowledge, PermSchedule, PermRegister, PermStationAccess,
		PermCredentialsRead, PermCredentials, PermOperators, PermSwitchAC, PermCommand,
		PermBackup},
}

// Reasons an API call is refused with 403; the reason label of
// waystation_api_denied_total.
const (
	DeniedRole  = "role"  // the operator's role does not allow the kind of call
	DeniedScope = "scope" // the station, organisation or operator is outside its scope
)

// ValidRole reports whether role is one of Roles.
func ValidRole(role string) bool { return slices.Contains(Roles, role) }

// Can reports whether the operator's role allows calls of kind p.
func (op Operator) Can(p Permission) bool {
	return slices.Contains(rolePermissions[op.Role], p)
}

// AllOrgs reports whether the operator's scope is every organisation.
func (op Operator) AllOrgs() bool { return slices.Contains(op.Orgs, AllOrgs) }

// InScope reports whether the operator may see and manage what belongs to
// org. Stations of no organisation ("") are in the scope of all-orgs
// operators only.
func (op Operator) InScope(org string) bool {
	if op.AllOrgs() {
		return true
	}
	return org != "" && slices.Contains(op.Orgs, org)
}

// Covers reports whether every organisation of scope is in the operator's
// scope: an admin may hand out or take back only what it holds itself.
func (op Operator) Covers(scope []string) bool {
	if op.AllOrgs() {
		return true
	}
	for _, org := range scope {
		if org == AllOrgs || !op.InScope(org) {
			return false
		}
	}
	return true
}

// operatorNameRE is what an operator's name may be: it appears in logs,
// URLs and audit trails.
var operatorNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ParseScope reads a scope written as "org1,org2" or "*", trimming spaces
// and dropping repeats.
func ParseScope(s string) []string {
	var out []string
	for _, org := range strings.Split(s, ",") {
		if org = strings.TrimSpace(org); org != "" && !slices.Contains(out, org) {
			out = append(out, org)
		}
	}
	return out
}

// validate checks an operator before it is stored and puts its scope in
// order (sorted, no repeats).
func (op *Operator) validate() error {
	if !operatorNameRE.MatchString(op.Name) {
		return fmt.Errorf("%w: name %q: want 1 to 64 of A-Z a-z 0-9 . _ -, starting with a "+
			"letter or digit", ErrInvalidOperator, op.Name)
	}
	if !ValidRole(op.Role) {
		return fmt.Errorf("%w: role %q: want one of %s", ErrInvalidOperator, op.Role,
			strings.Join(Roles, ", "))
	}
	var orgs []string
	for _, org := range op.Orgs {
		org = strings.TrimSpace(org)
		switch {
		case org == "":
			return fmt.Errorf("%w: an empty organisation in the scope", ErrInvalidOperator)
		case strings.Contains(org, ","):
			return fmt.Errorf("%w: organisation %q has a comma", ErrInvalidOperator, org)
		case len(org) > 128:
			return fmt.Errorf("%w: organisation %.20q… is too long", ErrInvalidOperator, org)
		}
		if !slices.Contains(orgs, org) {
			orgs = append(orgs, org)
		}
	}
	switch {
	case len(orgs) == 0:
		return fmt.Errorf("%w: operator %s has no scope: give organisations, or %q for all",
			ErrInvalidOperator, op.Name, AllOrgs)
	case slices.Contains(orgs, AllOrgs) && len(orgs) > 1:
		return fmt.Errorf("%w: %q means every organisation; give it alone", ErrInvalidOperator,
			AllOrgs)
	}
	slices.Sort(orgs)
	op.Orgs = orgs
	return nil
}
