package controller

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// handleCommands adds the routes of commands when they are configured.
//
// Who may send what: every role may switch an AC (ac.set) and ping a
// device, so a night monitor can turn off an AC left running and a
// scheduler can start one early; door, charger and reboot commands need a
// technician or an admin. Either way the device's station must be in the
// operator's scope. Anyone who can read a station sees its commands.
func (a *API) handleCommands() {
	if a.o.Commands == nil {
		return
	}
	a.handle("POST /api/v1/devices/{id}/commands", PermSwitchAC, a.sendCommand)
	a.handle("GET /api/v1/commands", PermRead, a.listCommands)
	a.handle("GET /api/v1/commands/{id}", PermRead, a.getCommand)
}

// CommandBody is the body of POST /api/v1/devices/{id}/commands.
type CommandBody struct {
	Name string         `json:"name"`
	Args map[string]any `json:"args,omitempty"`
	// ExpiresIn is how long the command may wait for the device, as a Go
	// duration ("2m"); empty means the default.
	ExpiresIn string `json:"expires_in,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// openCommands are the commands every role may send.
var openCommands = []string{schemas.CmdACSet, schemas.CmdPing}

func (a *API) sendCommand(w http.ResponseWriter, r *http.Request, op Operator) {
	d, err := a.o.Registry.Device(r.PathValue("id"))
	if err != nil {
		writeRegistryError(w, err)
		return
	}
	st, err := a.o.Registry.Station(d.Station)
	if err != nil {
		writeRegistryError(w, err)
		return
	}
	if !a.allowStation(w, r, op, st) {
		return
	}
	var body CommandBody
	if err := readJSON(w, r, &body); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !slices.Contains(openCommands, body.Name) && !op.Can(PermCommand) {
		a.denyRole(w, r, op, PermCommand)
		return
	}
	var ttl time.Duration
	if body.ExpiresIn != "" {
		if ttl, err = time.ParseDuration(body.ExpiresIn); err != nil || ttl <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("expires_in %q: want a duration "+
				"such as 90s or 2m", body.ExpiresIn))
			return
		}
	}
	rec, err := a.o.Commands.Issue(CommandRequest{Device: d.ID, Name: body.Name, Args: body.Args,
		Issuer: "operator:" + op.Name, TTL: ttl, Reason: body.Reason})
	if err != nil {
		writeCommandError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, rec)
}

func (a *API) listCommands(w http.ResponseWriter, r *http.Request, op Operator) {
	q := r.URL.Query()
	f := CommandFilter{Device: q.Get("device"), Station: q.Get("station"), State: q.Get("state"),
		Issuer: q.Get("issuer"), Name: q.Get("name")}
	if f.State != "" && !slices.Contains(CommandStates, f.State) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("state %q: want one of %s", f.State,
			strings.Join(CommandStates, ", ")))
		return
	}
	if s := q.Get("since"); s != "" {
		since, err := parseSince(s, a.now())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		f.Since = since
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want 1 to 10000", s))
			return
		}
		f.Limit = n
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
	if f.Device != "" {
		if d, err := a.o.Registry.Device(f.Device); err == nil {
			if st, err := a.o.Registry.Station(d.Station); err == nil &&
				!a.allowStation(w, r, op, st) {
				return
			}
		}
	}
	visible := a.visibleStations(op)
	f.Visible = func(station string) bool { _, ok := visible[station]; return ok }
	list, err := a.o.Commands.List(f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (a *API) getCommand(w http.ResponseWriter, r *http.Request, op Operator) {
	rec, err := a.o.Commands.Get(r.PathValue("id"))
	if err != nil {
		writeCommandError(w, err)
		return
	}
	st, err := a.o.Registry.Station(rec.Station)
	if err != nil {
		st = devices.Station{ID: rec.Station} // a station since removed: all-orgs operators only
	}
	if !a.allowStation(w, r, op, st) {
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// parseSince reads a time as RFC 3339 or as a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("since %q: want a time such as 2025-07-15T08:00:00+08:00 "+
			"or a duration back from now such as 24h", s)
	}
	return t, nil
}

func writeCommandError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrInvalidCommand):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrCommandNotFound), errors.Is(err, devices.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrCommandsStopped):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
