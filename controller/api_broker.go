package controller

import (
	"fmt"
	"net/http"

	"github.com/waystation/waystation/devices"
)

// handleBroker adds the route an external broker's login files are made
// from (waystation broker export-auth --server).
func (a *API) handleBroker() {
	// The hashes of every device's secret: an admin's call, like the
	// operators' list.
	a.handle("GET /api/v1/broker/logins", PermOperators, a.brokerLogins)
}

// BrokerLogins is the answer of GET /api/v1/broker/logins.
type BrokerLogins struct {
	Logins []devices.BrokerLogin `json:"logins"`
	// Missing counts the devices whose secret was issued before the
	// registry kept hashes for an external broker; they are in Logins
	// without a hash and cannot log in there until their secret is
	// rotated.
	Missing int `json:"missing"`
}

func (a *API) brokerLogins(w http.ResponseWriter, r *http.Request, op Operator) {
	// The broker's files hold every device's login, whoever hosts it.
	if !op.AllOrgs() {
		a.deny(w, r, op, DeniedScope, fmt.Sprintf("the broker's logins cover every "+
			"organisation's devices; operator %s is scoped to %v", op.Name, op.Orgs))
		return
	}
	out := BrokerLogins{Logins: a.o.Registry.BrokerLogins()}
	for _, l := range out.Logins {
		if l.Hash == "" {
			out.Missing++
		}
	}
	writeJSON(w, http.StatusOK, out)
}
