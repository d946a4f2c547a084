package controller

import (
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
	out := BrokerLogins{Logins: a.o.Registry.BrokerLogins()}
	for _, l := range out.Logins {
		if l.Hash == "" {
			out.Missing++
		}
	}
	writeJSON(w, http.StatusOK, out)
}
