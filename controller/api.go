package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
)

// APIOptions configures the HTTP API. Registry, Twins and Operators are
// required.
type APIOptions struct {
	Registry  *devices.Registry
	Twins     *devices.Twins
	Operators *Operators
	Gatherer  prometheus.Gatherer // served at /metrics; none when nil
	// Registerer receives the API's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Credentials and Rules, when set, serve worker credentials and
	// stations' access rules.
	Credentials *Credentials
	Rules       *AccessRules
	// AllowLists, when set, adds the allow-list status of stations.
	AllowLists *AllowLists
	// Usage, when set, serves visits and the occupancy of stations.
	Usage *Usage
	// Events, when set, serves the live event stream GET /api/v1/events.
	Events *Events
	// Commands, when set, sends commands and serves their log.
	Commands *Commands
	// Crews and Planner, when set, serve crews' timetables and the plan.
	Crews   *Crews
	Planner *Planner
	// Alerts, when set, serves alerts and silences.
	Alerts *Alerts
	// History, when set, serves devices' telemetry history.
	History *devices.History
	// Backup, when set, is the data file GET /api/v1/backup copies.
	Backup *bolt.DB
	// Location is the time zone of reports and opening hours; default
	// time.Local. Now is the clock; default time.Now.
	Location *time.Location
	Now      func() time.Time
	Logger   *slog.Logger
	// Sessions, when set, lets the console's signed-in browsers make
	// read-only calls (GET) with their session cookie instead of a token.
	Sessions *Sessions
	// Ready reports whether the server is ready; /healthz answers 503 until
	// it is. Nil means always ready.
	Ready func() error
}

// maxBodyBytes bounds a request body; an import of a whole county fits.
const maxBodyBytes = 4 << 20

// API is the HTTP API of the platform.
type API struct {
	o      APIOptions
	log    *slog.Logger
	mux    *http.ServeMux
	denied *prometheus.CounterVec
}

// NewAPI builds the API handler and registers its metrics.
func NewAPI(o APIOptions) (*API, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{o: o, log: o.Logger.With("component", "api"), mux: http.NewServeMux()}
	var err error
	if a.denied, err = newDeniedCounter(o.Registerer); err != nil {
		return nil, err
	}

	a.mux.HandleFunc("GET /healthz", a.healthz)
	if o.Gatherer != nil {
		a.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	}
	// Public, without a token: it serves workers' apps and maps.
	a.mux.HandleFunc("GET /api/v1/stations/nearest", a.nearest)
	a.handle("GET /api/v1/stations", PermRead, a.listStations)
	a.handle("POST /api/v1/stations", PermRegister, a.addStations)
	a.handle("GET /api/v1/stations/{id}", PermRead, a.getStation)
	a.handle("GET /api/v1/devices", PermRead, a.listDevices)
	a.handle("POST /api/v1/devices", PermRegister, a.addDevice)
	a.handle("GET /api/v1/devices/{id}", PermRead, a.getDevice)
	a.handleOperators()
	a.handleAccess()
	a.handleUsage()
	a.handleEvents()
	a.handleCommands()
	a.handlePlan()
	a.handleBroker()
	a.handleAlerts()
	a.handleHistory()
	a.handleBackup()
	a.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	})
	return a, nil
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.setClockHeaders(w.Header())
	a.mux.ServeHTTP(w, r)
}

// apiFunc is an authenticated handler.
type apiFunc func(w http.ResponseWriter, r *http.Request, op Operator)

// handle serves pattern to operators whose role allows calls of kind perm;
// f checks the scope of what the call touches.
func (a *API) handle(pattern string, perm Permission, f apiFunc) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		op, err := a.authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="waystation"`)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		if !op.Can(perm) {
			a.denyRole(w, r, op, perm)
			return
		}
		f(w, r, op)
	})
}

// authenticate returns the operator a request comes from: the one whose
// token it carries as a bearer token, or for a read-only call without one
// the console session of its cookie (console_auth.go); else ErrUnauthorized.
func (a *API) authenticate(r *http.Request) (Operator, error) {
	if op, ok := a.sessionOperator(r); ok {
		return op, nil
	}
	token, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !bearer {
		token = ""
	}
	return a.o.Operators.Lookup(strings.TrimSpace(token))
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	if a.o.Ready != nil {
		if err := a.o.Ready(); err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// StationView is a station with its devices' twins.
type StationView struct {
	devices.Station
	Devices []DeviceView `json:"devices,omitempty"`
	// Occupancy is how many people are inside now, when usage is counted.
	Occupancy *Occupancy `json:"occupancy,omitempty"`
}

// DeviceView is a registered device with its twin.
type DeviceView struct {
	devices.Device
	Twin *devices.Twin `json:"twin,omitempty"`
}

func (a *API) listStations(w http.ResponseWriter, r *http.Request, op Operator) {
	out := []devices.Station{}
	for _, st := range a.o.Registry.Stations() {
		if op.InScope(st.Org) {
			out = append(out, st)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// addStations takes one station object, or an array added all or none.
func (a *API) addStations(w http.ResponseWriter, r *http.Request, op Operator) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "read body: "+err.Error())
		return
	}
	if trimmed := strings.TrimSpace(string(body)); strings.HasPrefix(trimmed, "[") {
		var list []devices.Station
		if err := strictJSON(body, &list); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		for _, st := range list {
			if !a.allowOrg(w, r, op, st.Org, "station "+st.ID) {
				return
			}
		}
		if err := a.o.Registry.AddStations(list); err != nil {
			writeRegistryError(w, err)
			return
		}
		a.log.Info("stations added", "count", len(list), "by", op.Name)
		writeJSON(w, http.StatusCreated, list)
		return
	}
	var st devices.Station
	if err := strictJSON(body, &st); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !a.allowOrg(w, r, op, st.Org, "station "+st.ID) {
		return
	}
	st, err = a.o.Registry.AddStation(st)
	if err != nil {
		writeRegistryError(w, err)
		return
	}
	a.log.Info("station added", "station", st.ID, "by", op.Name)
	writeJSON(w, http.StatusCreated, st)
}

func (a *API) getStation(w http.ResponseWriter, r *http.Request, op Operator) {
	st, err := a.o.Registry.Station(r.PathValue("id"))
	if err != nil {
		writeRegistryError(w, err)
		return
	}
	if !a.allowStation(w, r, op, st) {
		return
	}
	view := StationView{Station: st}
	if a.o.Usage != nil {
		occ := a.o.Usage.Occupancy(st.ID)
		view.Occupancy = &occ
	}
	for _, d := range a.o.Registry.Devices() {
		if d.Station == st.ID {
			view.Devices = append(view.Devices, a.deviceView(d))
		}
	}
	writeJSON(w, http.StatusOK, view)
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request, op Operator) {
	station := r.URL.Query().Get("station")
	if station != "" {
		st, err := a.o.Registry.Station(station)
		if err != nil {
			writeRegistryError(w, err)
			return
		}
		if !a.allowStation(w, r, op, st) {
			return
		}
	}
	visible := a.visibleStations(op)
	out := []DeviceView{}
	for _, d := range a.o.Registry.Devices() {
		if _, ok := visible[d.Station]; ok && (station == "" || d.Station == station) {
			out = append(out, a.deviceView(d))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// NewDevice is the answer to a registration: the device and its secret,
// which is shown this once.
type NewDevice struct {
	devices.Device
	Secret string `json:"secret"`
}

func (a *API) addDevice(w http.ResponseWriter, r *http.Request, op Operator) {
	var d devices.Device
	if err := readJSON(w, r, &d); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if st, err := a.o.Registry.Station(d.Station); err == nil && !a.allowStation(w, r, op, st) {
		return
	}
	d, secret, err := a.o.Registry.AddDevice(d)
	if err != nil {
		writeRegistryError(w, err)
		return
	}
	a.log.Info("device registered", "device", d.ID, "station", d.Station, "kind", d.Kind, "by", op.Name)
	writeJSON(w, http.StatusCreated, NewDevice{Device: d, Secret: secret})
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request, op Operator) {
	d, err := a.o.Registry.Device(r.PathValue("id"))
	if err != nil {
		writeRegistryError(w, err)
		return
	}
	if st, err := a.o.Registry.Station(d.Station); err == nil && !a.allowStation(w, r, op, st) {
		return
	}
	writeJSON(w, http.StatusOK, a.deviceView(d))
}

func (a *API) deviceView(d devices.Device) DeviceView {
	v := DeviceView{Device: d}
	if tw, ok := a.o.Twins.Get(d.ID); ok {
		v.Twin = &tw
	}
	return v
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	return strictJSON(body, v)
}

// strictJSON decodes a request body, refusing unknown fields so a typo in a
// field name is an error, not a silently missing value.
func strictJSON(body []byte, v any) error {
	if strings.TrimSpace(string(body)) == "null" {
		return errors.New("bad JSON body: null")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %w", err)
	}
	if dec.More() {
		return errors.New("bad JSON body: more than one value")
	}
	return nil
}

func writeRegistryError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, devices.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, devices.ErrExists):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, devices.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// Error is the body of every failed API call.
type Error struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Error{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
