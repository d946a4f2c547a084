package controller

import (
	"net/http"
	"time"
)

// Headers on every API answer that give the server's clock and zone, so a
// client shows times as the server sees them: in the zone of its schedules
// and reports, and "ago" measured against its clock, which may be a
// simulated one running faster than the wall clock.
const (
	// HeaderTime is the server's time when it answered, RFC 3339 with
	// nanoseconds and the zone's UTC offset at that time.
	HeaderTime = "X-Waystation-Time"
	// HeaderZone is the IANA name of the server's zone, e.g.
	// Asia/Shanghai. It is left out when the zone has no such name (the
	// machine's unnamed local zone); the offset in HeaderTime is then all
	// a client has.
	HeaderZone = "X-Waystation-Zone"
)

// setClockHeaders writes HeaderTime and HeaderZone on an answer.
func (a *API) setClockHeaders(h http.Header) {
	loc := a.location()
	h.Set(HeaderTime, a.now().In(loc).Format(time.RFC3339Nano))
	if name := loc.String(); name != "Local" && name != "" {
		h.Set(HeaderZone, name)
	}
}
