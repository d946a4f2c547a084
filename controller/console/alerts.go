package console

import (
	"net/http"
	"time"

	"github.com/waystation/waystation/controller"
)

// alertRow is one alert as the board shows it.
type alertRow struct {
	ID          string
	Station     string
	StationName string
	Device      string
	Rule        string
	Level       string // critical, warning, info
	State       string // firing, acknowledged, resolved
	Since       time.Time
	Count       int
	Escalation  int
	Note        string
	Summary     string
}

// boardView is the data of the alerts board.
type boardView struct {
	Running bool // the alert engine runs on this server
	Alerts  []alertRow
	// Offline lists the stations in scope with a device offline, for the
	// time before the alert engine exists.
	Offline []stationRow
}

// openAlertsByStation returns the open alerts in the operator's scope by
// station.
func (c *Console) openAlertsByStation(op controller.Operator) map[string][]alertRow {
	out := map[string][]alertRow{}
	for _, a := range c.openAlerts(op) {
		out[a.Station] = append(out[a.Station], a)
	}
	return out
}

// openAlerts returns the open alerts in the operator's scope, worst and
// oldest first. The alert engine is not part of this server yet.
func (c *Console) openAlerts(op controller.Operator) []alertRow { return nil }

// stationAlerts returns a station's open alerts.
func (c *Console) stationAlerts(op controller.Operator, station string) []alertRow {
	return c.openAlertsByStation(op)[station]
}

func (c *Console) board(op controller.Operator) boardView {
	v := boardView{Alerts: c.openAlerts(op)}
	for _, row := range c.stationRows(op) {
		if row.Online < row.Devices {
			v.Offline = append(v.Offline, row)
		}
	}
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
