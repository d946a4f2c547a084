package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// consoleReason is the reason the audit log gives for commands sent from
// the console's buttons.
const consoleReason = "sent from the console"

// stationDevice reads the station of the path and a device of it named by
// the form, checking the scope and the kind; it answers the error itself.
func (c *Console) stationDevice(rq *request, kind schemas.Kind) (devices.Station,
	devices.Device, bool) {
	st, err := c.o.Registry.Station(rq.r.PathValue("id"))
	if err != nil {
		c.failFor(rq, http.StatusNotFound, "There is no station "+rq.r.PathValue("id")+".")
		return st, devices.Device{}, false
	}
	if !c.allowStation(rq, st) {
		return st, devices.Device{}, false
	}
	d, err := c.o.Registry.Device(rq.r.PostFormValue("device"))
	if err != nil || d.Station != st.ID || d.Kind != kind {
		c.failFor(rq, http.StatusBadRequest, fmt.Sprintf("Station %s has no %s %q.", st.ID, kind,
			rq.r.PostFormValue("device")))
		return st, d, false
	}
	return st, d, true
}

// switchAC turns a station's AC on or off, optionally with a setpoint.
func (c *Console) switchAC(rq *request) {
	st, d, ok := c.stationDevice(rq, schemas.KindAC)
	if !ok {
		return
	}
	args := map[string]any{}
	switch rq.r.PostFormValue("power") {
	case "on":
		args["power"] = true
	case "off":
		args["power"] = false
	default:
		c.failFor(rq, http.StatusBadRequest, "Say whether to switch the AC on or off.")
		return
	}
	if s := strings.TrimSpace(rq.r.PostFormValue("setpoint_c")); s != "" && args["power"] == true {
		sp, err := strconv.ParseFloat(s, 64)
		if err != nil || sp < schemas.MinSetpointC || sp > schemas.MaxSetpointC {
			c.failFor(rq, http.StatusBadRequest, fmt.Sprintf("Setpoint %q: want %d to %d °C.", s,
				schemas.MinSetpointC, schemas.MaxSetpointC))
			return
		}
		args["setpoint_c"] = sp
	}
	c.issue(rq, st, d, schemas.CmdACSet, args)
}

// unlockDoor unlocks a station's door once, for the terminal's own time.
func (c *Console) unlockDoor(rq *request) {
	st, d, ok := c.stationDevice(rq, schemas.KindLock)
	if !ok {
		return
	}
	c.issue(rq, st, d, schemas.CmdLockUnlock, nil)
}

func (c *Console) issue(rq *request, st devices.Station, d devices.Device, name string,
	args map[string]any) {
	rec, err := c.o.Commands.Issue(controller.CommandRequest{Device: d.ID, Name: name, Args: args,
		Issuer: "operator:" + rq.op.Name, Reason: consoleReason})
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, controller.ErrInvalidCommand) {
			code = http.StatusBadRequest
		}
		c.failFor(rq, code, "The command was not sent: "+err.Error())
		return
	}
	c.log.Info("command sent from the console", "command", rec.ID, "device", d.ID, "name", name,
		"operator", rq.op.Name)
	http.Redirect(rq.w, rq.r, "/stations/"+st.ID+"?sent="+url.QueryEscape(rec.ID)+"#commands",
		http.StatusSeeOther)
}

// stationCommands is the latest commands of a station, for its page.
func (c *Console) stationCommands(station string) []controller.CommandRecord {
	if c.o.Commands == nil {
		return nil
	}
	list, err := c.o.Commands.List(controller.CommandFilter{Station: station, Limit: 15})
	if err != nil {
		c.log.Warn("station commands", "station", station, "err", err)
	}
	return list
}

// commandsView is the data of the commands page.
type commandsView struct {
	Station, Device, State, Name, Issuer, Since string
	States, Names                               []string
	Commands                                    []controller.CommandRecord
	Error                                       string
}

// commandsPage is the audit log of commands, filterable, in scope.
func (c *Console) commandsPage(rq *request) {
	q := rq.r.URL.Query()
	v := commandsView{Station: q.Get("station"), Device: q.Get("device"), State: q.Get("state"),
		Name: q.Get("name"), Issuer: q.Get("issuer"), Since: q.Get("since"),
		States: controller.CommandStates, Names: schemas.CommandNames}
	if v.Since == "" {
		v.Since = "24h"
	}
	f := controller.CommandFilter{Station: v.Station, Device: v.Device, Name: v.Name,
		Issuer: v.Issuer, Limit: 300}
	if slices.Contains(controller.CommandStates, v.State) {
		f.State = v.State
	}
	if d, err := time.ParseDuration(v.Since); err == nil && d > 0 {
		f.Since = c.o.Now().Add(-d)
	} else if v.Since != "all" {
		v.Error = fmt.Sprintf("Since %q: give a duration such as 24h or 90m, or all.", v.Since)
	}
	if v.Station != "" {
		st, err := c.o.Registry.Station(v.Station)
		if err == nil && !c.allowStation(rq, st) {
			return
		}
	}
	visible := map[string]bool{}
	for _, st := range c.o.Registry.Stations() {
		visible[st.ID] = rq.op.InScope(st.Org)
	}
	f.Visible = func(station string) bool { return visible[station] }
	list, err := c.o.Commands.List(f)
	if err != nil {
		c.failFor(rq, http.StatusInternalServerError, err.Error())
		return
	}
	v.Commands = list
	c.render(rq, http.StatusOK, "commands", view{Title: "Commands", Nav: "commands", Data: v,
		Error: v.Error})
}
