package console

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// Levels of a station: the severity of its worst open alert, or levelOK.
// Each has a colour, a shape on the map, a mark and a word, so colour is
// never the only signal.
const levelOK = "ok"

// levelRank orders levels, worst last.
var levelRank = map[string]int{levelOK: 0, controller.SeverityWarning: 1,
	controller.SeverityMinor: 2, controller.SeverityMajor: 3, controller.SeverityCritical: 4}

// problemOffline is the kind of problem of a station with a device offline.
const problemOffline = "device offline"

// stationRow is one station of the map and the list.
type stationRow struct {
	Station  devices.Station
	Level    string   // of its worst open alert
	Alerts   int      // open alerts
	Problems []string // kinds of problem: the rules of its open alerts, device offline
	Online   int      // devices online
	Devices  int
	OpenNow  bool
	Visits   int64   // today
	X, Y     float64 // on the map
}

// stationRows summarises every station in the operator's scope.
func (c *Console) stationRows(op controller.Operator) []stationRow {
	now := c.now()
	byStation := map[string][]devices.Device{}
	for _, d := range c.o.Registry.Devices() {
		byStation[d.Station] = append(byStation[d.Station], d)
	}
	alerts := c.openAlertsByStation(op)
	var rows []stationRow
	for _, st := range c.o.Registry.Stations() {
		if !op.InScope(st.Org) {
			continue
		}
		row := stationRow{Station: st, Level: levelOK, Devices: len(byStation[st.ID]),
			OpenNow: controller.OpenAt(st.Hours, now, c.o.Location)}
		for _, d := range byStation[st.ID] {
			if tw, ok := c.o.Twins.Get(d.ID); ok && tw.Online {
				row.Online++
			}
		}
		for _, a := range alerts[st.ID] {
			row.Alerts++
			if levelRank[a.Level] > levelRank[row.Level] {
				row.Level = a.Level
			}
			if !slices.Contains(row.Problems, a.Rule) {
				row.Problems = append(row.Problems, a.Rule)
			}
		}
		if row.Online < row.Devices {
			row.Problems = append(row.Problems, problemOffline)
		}
		rows = append(rows, row)
	}
	c.visitsToday(rows, now)
	return rows
}

// visitsToday fills in each row's visits since midnight.
func (c *Console) visitsToday(rows []stationRow, now time.Time) {
	if c.o.Usage == nil || len(rows) == 0 {
		return
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.Station.ID
	}
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, c.o.Location)
	rep, err := c.o.Usage.Report(ids, day, day.AddDate(0, 0, 1), controller.ByDay)
	if err != nil {
		c.log.Warn("visits today", "err", err)
		return
	}
	by := map[string]int64{}
	for _, r := range rep.Rows {
		by[r.Station] += r.Visits
	}
	for i := range rows {
		rows[i].Visits = by[rows[i].Station.ID]
	}
}

// filter is what the map and the list show.
type filter struct {
	Problem string // a kind of problem; "any" for stations with any; "" for all
	Org     string
	Open    bool // open now only
	Sort    string
	Desc    bool
}

func readFilter(r *http.Request) filter {
	q := r.URL.Query()
	return filter{Problem: q.Get("problem"), Org: q.Get("org"), Open: q.Get("open") == "now",
		Sort: q.Get("sort"), Desc: q.Get("dir") == "desc"}
}

// query writes the filter back as a query string, with another sort.
func (f filter) query(sort string, desc bool) string {
	q := url.Values{}
	if f.Problem != "" {
		q.Set("problem", f.Problem)
	}
	if f.Org != "" {
		q.Set("org", f.Org)
	}
	if f.Open {
		q.Set("open", "now")
	}
	if sort != "" {
		q.Set("sort", sort)
		if desc {
			q.Set("dir", "desc")
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func (f filter) keep(row stationRow) bool {
	switch {
	case f.Org != "" && row.Station.Org != f.Org:
		return false
	case f.Open && !row.OpenNow:
		return false
	case f.Problem == "any":
		return len(row.Problems) > 0
	case f.Problem != "":
		return slices.Contains(row.Problems, f.Problem)
	}
	return true
}

// countyView is the data of the map and the list pages.
type countyView struct {
	Filter   filter
	Rows     []stationRow
	Total    int // stations in scope
	Orgs     []string
	Problems []string
	Counts   map[string]int // stations by level, of those shown
	Map      mapView
	Inset    *insetView
	Columns  []column
}

type mapView struct {
	Width, Height float64
}

// insetView is a second, closer drawing of the town where stations
// crowd: at county scale their dots cover each other.
type insetView struct {
	Map  mapView
	Rows []stationRow
}

// column is a sortable column of the list.
type column struct {
	Key, Label string
	Sorted     string // "ascending", "descending" or ""
	Href       string
}

func (c *Console) county(rq *request) countyView {
	f := readFilter(rq.r)
	all := c.stationRows(rq.op)
	v := countyView{Filter: f, Total: len(all), Counts: map[string]int{}}
	for _, row := range all {
		if row.Station.Org != "" && !slices.Contains(v.Orgs, row.Station.Org) {
			v.Orgs = append(v.Orgs, row.Station.Org)
		}
		for _, p := range row.Problems {
			if !slices.Contains(v.Problems, p) {
				v.Problems = append(v.Problems, p)
			}
		}
		if f.keep(row) {
			v.Rows = append(v.Rows, row)
			v.Counts[row.Level]++
		}
	}
	slices.Sort(v.Orgs)
	slices.Sort(v.Problems)
	// The map keeps its frame when a filter hides stations, so a dot stays
	// where the eye learned it.
	v.Map = project(all, v.Rows)
	v.Inset = townInset(all, v.Rows)
	sortRows(v.Rows, f.Sort, f.Desc)
	for _, col := range []struct{ key, label string }{{"id", "Station"}, {"name", "Name"},
		{"org", "Organisation"}, {"level", "Worst alert"}, {"alerts", "Open alerts"},
		{"online", "Devices online"}, {"open", "Open now"}, {"visits", "Visits today"}} {
		c := column{Key: col.key, Label: col.label, Href: f.query(col.key, false)}
		if f.Sort == col.key || (f.Sort == "" && col.key == "level") {
			c.Sorted = "ascending"
			if f.Desc || (f.Sort == "" && col.key == "level") {
				c.Sorted = "descending"
			}
			c.Href = f.query(col.key, c.Sorted == "ascending")
		}
		v.Columns = append(v.Columns, c)
	}
	return v
}

// sortRows sorts the list by a column; by default worst first.
func sortRows(rows []stationRow, key string, desc bool) {
	if key == "" {
		key, desc = "level", true
	}
	by := func(a, b stationRow) int {
		switch key {
		case "name":
			return strings.Compare(a.Station.Name, b.Station.Name)
		case "org":
			return strings.Compare(a.Station.Org, b.Station.Org)
		case "level":
			return cmp.Or(cmp.Compare(levelRank[a.Level], levelRank[b.Level]),
				cmp.Compare(a.Alerts, b.Alerts), cmp.Compare(len(a.Problems), len(b.Problems)))
		case "alerts":
			return cmp.Compare(a.Alerts, b.Alerts)
		case "online":
			return cmp.Compare(a.Online*1000/max(a.Devices, 1), b.Online*1000/max(b.Devices, 1))
		case "open":
			return cmp.Compare(b2i(a.OpenNow), b2i(b.OpenNow))
		case "visits":
			return cmp.Compare(a.Visits, b.Visits)
		}
		return 0
	}
	slices.SortStableFunc(rows, func(a, b stationRow) int {
		n := by(a, b)
		if desc {
			n = -n
		}
		return cmp.Or(n, strings.Compare(a.Station.ID, b.Station.ID))
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Map geometry: an equirectangular projection of the stations' bounding
// box, shrunk in longitude by the cosine of the latitude, into a frame
// mapWidth wide.
const (
	mapWidth  = 1000.0
	mapMargin = 40.0
)

// project places rows on a map framed around all.
func project(all, rows []stationRow) mapView {
	if len(all) == 0 {
		return mapView{Width: mapWidth, Height: mapWidth / 2}
	}
	minLat, maxLat := all[0].Station.Lat, all[0].Station.Lat
	minLon, maxLon := all[0].Station.Lon, all[0].Station.Lon
	for _, r := range all {
		minLat, maxLat = min(minLat, r.Station.Lat), max(maxLat, r.Station.Lat)
		minLon, maxLon = min(minLon, r.Station.Lon), max(maxLon, r.Station.Lon)
	}
	kx := math.Cos((minLat + maxLat) / 2 * math.Pi / 180)
	spanX := max((maxLon-minLon)*kx, 0.01)
	spanY := max(maxLat-minLat, 0.01)
	inner := mapWidth - 2*mapMargin
	scale := inner / spanX
	height := spanY*scale + 2*mapMargin
	if height > 1.4*mapWidth { // a tall county: fit the height instead
		scale = (1.4*mapWidth - 2*mapMargin) / spanY
		height = 1.4 * mapWidth
	}
	height = max(height, 300)
	offX := (mapWidth - spanX*scale) / 2
	offY := (height - spanY*scale) / 2
	for i := range rows {
		rows[i].X = math.Round((offX+(rows[i].Station.Lon-minLon)*kx*scale)*10) / 10
		rows[i].Y = math.Round((offY+(maxLat-rows[i].Station.Lat)*scale)*10) / 10
	}
	return mapView{Width: mapWidth, Height: math.Round(height)}
}

// Town inset: stations within insetRadiusKm of the county's median
// station are drawn again, closer, when there are at least insetMin of
// them and they fill less than a quarter of the county's width.
const (
	insetRadiusKm = 4.0
	insetMin      = 8
)

func townInset(all, shown []stationRow) *insetView {
	if len(all) < insetMin {
		return nil
	}
	lats, lons := make([]float64, len(all)), make([]float64, len(all))
	for i, r := range all {
		lats[i], lons[i] = r.Station.Lat, r.Station.Lon
	}
	slices.Sort(lats)
	slices.Sort(lons)
	lat, lon := lats[len(lats)/2], lons[len(lons)/2]
	near := func(r stationRow) bool { return distanceKm(lat, lon, r.Station.Lat, r.Station.Lon) <= insetRadiusKm }
	var town []stationRow
	for _, r := range all {
		if near(r) {
			town = append(town, r)
		}
	}
	spanAll := (lons[len(lons)-1] - lons[0])
	minLon, maxLon := lon, lon
	for _, r := range town {
		minLon, maxLon = min(minLon, r.Station.Lon), max(maxLon, r.Station.Lon)
	}
	if len(town) < insetMin || (maxLon-minLon) > spanAll/4 {
		return nil
	}
	v := &insetView{}
	for _, r := range shown {
		if near(r) {
			v.Rows = append(v.Rows, r)
		}
	}
	v.Map = project(town, v.Rows)
	return v
}

// distanceKm is the great-circle distance between two points.
func distanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	rad := math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * 6371 * math.Asin(math.Min(1, math.Sqrt(h)))
}

func (c *Console) mapPage(rq *request) {
	v := c.county(rq)
	// Worst drawn last, so it lies on top.
	worstLast := func(a, b stationRow) int {
		return cmp.Compare(levelRank[a.Level], levelRank[b.Level])
	}
	slices.SortStableFunc(v.Rows, worstLast)
	if v.Inset != nil {
		slices.SortStableFunc(v.Inset.Rows, worstLast)
	}
	c.render(rq, http.StatusOK, "map", view{Title: "County map", Nav: "map", Data: v})
}

func (c *Console) listPage(rq *request) {
	c.render(rq, http.StatusOK, "list", view{Title: "Stations", Nav: "list", Data: c.county(rq)})
}

// deviceRow is one device of a station page, with its twin decoded.
type deviceRow struct {
	Device   devices.Device
	Reported bool // has a twin
	Twin     devices.Twin
	AC       *schemas.ACState
	Lock     *schemas.LockState
	Charger  *schemas.ChargerState
	AED      *schemas.AEDState
}

// stationView is the data of a station page.
type stationView struct {
	Station   devices.Station
	OpenNow   bool
	Devices   []deviceRow
	Occupancy *controller.Occupancy
	Visits    *controller.UsageRow // today's
	Alerts    []alertRow
	Commands  []controller.CommandRecord
	Sent      string // id of the command just sent from this page
	Charts    []chart
	Runs      []controller.PlannedRun // today's plan
	Access    *controller.StationRules
	AllowList *controller.AllowListStatus
}

func (c *Console) stationPage(rq *request) {
	st, err := c.o.Registry.Station(rq.r.PathValue("id"))
	if errors.Is(err, devices.ErrNotFound) {
		c.failFor(rq, http.StatusNotFound, "There is no station "+rq.r.PathValue("id")+".")
		return
	} else if err != nil {
		c.failFor(rq, http.StatusInternalServerError, err.Error())
		return
	}
	if !c.allowStation(rq, st) {
		return
	}
	now := c.now()
	v := stationView{Station: st, OpenNow: controller.OpenAt(st.Hours, now, c.o.Location)}
	for _, d := range c.o.Registry.Devices() {
		if d.Station == st.ID {
			v.Devices = append(v.Devices, c.deviceRow(d))
		}
	}
	slices.SortFunc(v.Devices, func(a, b deviceRow) int {
		return cmp.Or(strings.Compare(string(a.Device.Kind), string(b.Device.Kind)),
			strings.Compare(a.Device.ID, b.Device.ID))
	})
	if c.o.Usage != nil {
		occ := c.o.Usage.Occupancy(st.ID)
		v.Occupancy = &occ
		day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, c.o.Location)
		rep, err := c.o.Usage.Report([]string{st.ID}, day, day.AddDate(0, 0, 1), controller.ByDay)
		if err != nil {
			c.log.Warn("visits today", "station", st.ID, "err", err)
		} else {
			v.Visits = &rep.Total
		}
	}
	v.Alerts = c.openAlerts(rq.op, st.ID)
	v.Commands = c.stationCommands(st.ID)
	v.Charts = c.stationCharts(v.Devices, now)
	v.Runs = c.stationPlan(st.ID)
	if c.o.Rules != nil {
		rules := c.o.Rules.Get(st.ID, st.Org)
		v.Access = &rules
	}
	if c.o.AllowLists != nil {
		if al, ok := c.o.AllowLists.Status(st.ID); ok {
			v.AllowList = &al
		}
	}
	flash := ""
	if id := rq.r.URL.Query().Get("sent"); id != "" {
		for _, cmd := range v.Commands {
			if cmd.ID == id {
				v.Sent = id
				flash = fmt.Sprintf("Command %s (%s to %s) recorded: %s. Reload to follow it.",
					cmd.ID, cmd.Name, cmd.Device, cmd.State)
			}
		}
	}
	c.render(rq, http.StatusOK, "station", view{Title: st.Name + " (" + st.ID + ")",
		Nav: "map", Data: v, Flash: flash})
}

func (c *Console) deviceRow(d devices.Device) deviceRow {
	row := deviceRow{Device: d}
	tw, ok := c.o.Twins.Get(d.ID)
	if !ok {
		return row
	}
	row.Reported, row.Twin = true, tw
	if len(tw.State) == 0 {
		return row
	}
	var into any
	switch d.Kind {
	case schemas.KindAC:
		row.AC = &schemas.ACState{}
		into = row.AC
	case schemas.KindLock:
		row.Lock = &schemas.LockState{}
		into = row.Lock
	case schemas.KindCharger:
		row.Charger = &schemas.ChargerState{}
		into = row.Charger
	case schemas.KindAED:
		row.AED = &schemas.AEDState{}
		into = row.AED
	default:
		return row
	}
	if err := json.Unmarshal(tw.State, into); err != nil {
		c.log.Warn("twin state", "device", d.ID, "err", err)
		row.AC, row.Lock, row.Charger, row.AED = nil, nil, nil, nil
	}
	return row
}

// chartWindow is how far back station charts reach.
const chartWindow = 24 * time.Hour

// stationCharts draws, for each AC of a station, its room and outdoor
// temperatures and its power over the last day.
func (c *Console) stationCharts(devs []deviceRow, now time.Time) []chart {
	if c.o.History == nil {
		return nil
	}
	from := now.Add(-chartWindow)
	var out []chart
	for _, d := range devs {
		if d.Device.Kind != schemas.KindAC {
			continue
		}
		samples, err := c.o.History(d.Device.ID, from, now)
		if err != nil {
			c.log.Warn("history for a chart", "device", d.Device.ID, "err", err)
			continue
		}
		room := series{Name: "Room", Class: "s0"}
		outdoor := series{Name: "Outdoor", Class: "s1"}
		power := series{Name: "AC power", Class: "s2"}
		for _, sm := range samples {
			var st schemas.ACState
			if json.Unmarshal(sm.State, &st) != nil {
				continue
			}
			room.At, room.V = append(room.At, sm.At), append(room.V, st.RoomC)
			if st.OutdoorC != nil {
				outdoor.At, outdoor.V = append(outdoor.At, sm.At), append(outdoor.V, *st.OutdoorC)
			}
			if st.PowerW != nil {
				power.At, power.V = append(power.At, sm.At), append(power.V, *st.PowerW)
			}
		}
		out = append(out,
			drawChart("temp-"+d.Device.ID, "Temperature, "+d.Device.ID, "°C", from, now,
				c.o.Location, []series{room, outdoor}),
			drawChart("power-"+d.Device.ID, "AC power, "+d.Device.ID, "W", from, now,
				c.o.Location, []series{power}))
	}
	return out
}

// scopeStations is the stations in the operator's scope, by id; nil for
// an all-organisations operator.
func (c *Console) scopeStations(op controller.Operator) map[string]bool {
	if op.AllOrgs() {
		return nil
	}
	out := map[string]bool{}
	for _, st := range c.o.Registry.Stations() {
		if op.InScope(st.Org) {
			out[st.ID] = true
		}
	}
	return out
}
