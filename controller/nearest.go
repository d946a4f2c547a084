package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// Walking estimates: the straight line is lengthened by a detour factor for
// streets, and walked at an easy pace.
const (
	DetourFactor  = 1.3
	WalkingKMPerH = 5.0
	earthRadiusM  = 6371008.8
)

// A room is cool from CoolRoomMinC to CoolRoomMaxC, degrees Celsius: at
// most a little above the 26 °C public buildings are asked to cool to, and
// not colder than an air conditioner's lowest setpoint, so that an unheated
// room in winter is not offered as a place to cool down.
const (
	CoolRoomMinC = 16.0
	CoolRoomMaxC = 28.0
)

// What a worker may need now.
const (
	NeedCharger = "charger" // a free charger slot
	NeedAED     = "aed"     // a ready defibrillator
	NeedCool    = "cool"    // a cool room
)

// Limits of a nearest-station search.
const (
	DefaultNearestLimit = 5
	MaxNearestLimit     = 50
)

// NearestQuery is a nearest-station search.
type NearestQuery struct {
	Lat, Lon float64
	Need     string // "", NeedCharger, NeedAED or NeedCool
	OpenNow  bool   // only stations open now
	Limit    int
}

// NearestStation is a station found by a search, with what it offers now.
type NearestStation struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Address   string  `json:"address,omitempty"`
	Lat       float64 `json:"lat"`
	Lon       float64 `json:"lon"`
	Hours     string  `json:"hours"`
	Org       string  `json:"org,omitempty"`
	OpenToAll bool    `json:"open_to_all"` // else only its organisation's credentials open it
	// DistanceM is the walking distance estimate, metres: the great-circle
	// distance times DetourFactor. WalkMin is the time at WalkingKMPerH.
	DistanceM int `json:"distance_m"`
	WalkMin   int `json:"walk_min"`
	Availability
}

// Availability is what a station offers right now. An offline device
// offers nothing.
type Availability struct {
	// OpenNow: within its hours, and, if it has door terminals, one of them
	// is online and not in lockdown.
	OpenNow bool `json:"open_now"`
	// ChargerFreeSlots counts empty slots, where a worker can put a battery
	// to charge; ChargerFullSlots counts charged batteries ready to take
	// (swap cabinets). Only online cabinets with mains power and no smoke
	// count.
	ChargerFreeSlots int `json:"charger_free_slots"`
	ChargerFullSlots int `json:"charger_full_slots"`
	// AEDReady: an online defibrillator reports ready, its last self-test
	// passed and its cabinet is closed.
	AEDReady bool `json:"aed_ready"`
	// RoomC is the coolest room temperature an online air conditioner
	// reports; ACOn whether one of them is switched on.
	RoomC *float64 `json:"room_c,omitempty"`
	ACOn  bool     `json:"ac_on"`
	// Cool: RoomC is from CoolRoomMinC to CoolRoomMaxC.
	Cool bool `json:"cool"`
	// Kinds lists the kinds of device the station has, so that "no AED"
	// can be told from "an AED that is not ready".
	Kinds []schemas.Kind `json:"kinds"`
}

// has reports whether the station offers need now.
func (av Availability) has(need string) bool {
	switch need {
	case NeedCharger:
		return av.ChargerFreeSlots > 0
	case NeedAED:
		return av.AEDReady
	case NeedCool:
		return av.Cool
	}
	return true
}

// parseNearest reads and checks the query of a nearest-station search.
func parseNearest(r *http.Request) (NearestQuery, error) {
	v := r.URL.Query()
	q := NearestQuery{Need: v.Get("need"), Limit: DefaultNearestLimit}
	var err error
	if q.Lat, err = coordinate(v.Get("lat"), "lat", 90); err != nil {
		return q, err
	}
	if q.Lon, err = coordinate(v.Get("lon"), "lon", 180); err != nil {
		return q, err
	}
	switch q.Need {
	case "", NeedCharger, NeedAED, NeedCool:
	default:
		return q, fmt.Errorf("need %q: want charger, aed or cool", clipQuery(q.Need))
	}
	switch open := v.Get("open"); open {
	case "":
	case "now":
		q.OpenNow = true
	default:
		return q, fmt.Errorf("open %q: want now, or leave it out", clipQuery(open))
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxNearestLimit {
			return q, fmt.Errorf("limit %q: want 1 to %d", clipQuery(s), MaxNearestLimit)
		}
		q.Limit = n
	}
	return q, nil
}

func coordinate(s, name string, bound float64) (float64, error) {
	if s == "" {
		return 0, errors.New(name + " is missing: give lat and lon in degrees")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < -bound || f > bound {
		return 0, fmt.Errorf("%s %q: want degrees from %g to %g", name, clipQuery(s), -bound, bound)
	}
	return f, nil
}

func clipQuery(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// nearest answers GET /api/v1/stations/nearest. It needs no operator
// token: it serves workers' apps and maps.
func (a *API) nearest(w http.ResponseWriter, r *http.Request) {
	q, err := parseNearest(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, a.findNearest(q))
}

// findNearest ranks the stations by walking distance and returns the first
// q.Limit that match q, with what they offer now.
func (a *API) findNearest(q NearestQuery) []NearestStation {
	stations := a.o.Registry.Stations()
	found := make([]NearestStation, 0, len(stations))
	for _, st := range stations {
		d := haversineM(q.Lat, q.Lon, st.Lat, st.Lon) * DetourFactor
		found = append(found, NearestStation{ID: st.ID, Name: st.Name, Address: st.Address,
			Lat: st.Lat, Lon: st.Lon, Hours: st.Hours, Org: st.Org,
			DistanceM: int(math.Round(d)),
			WalkMin:   int(math.Ceil(d / (WalkingKMPerH * 1000 / 60)))})
	}
	slices.SortStableFunc(found, func(x, y NearestStation) int {
		if x.DistanceM != y.DistanceM {
			return x.DistanceM - y.DistanceM
		}
		return strings.Compare(x.ID, y.ID)
	})

	byStation := map[string][]devices.Device{}
	for _, d := range a.o.Registry.Devices() {
		byStation[d.Station] = append(byStation[d.Station], d)
	}
	now, loc := a.now(), a.location()
	out := []NearestStation{}
	for _, ns := range found {
		ns.Availability = availability(ns.Hours, byStation[ns.ID], a.o.Twins, now, loc)
		if (q.OpenNow && !ns.OpenNow) || !ns.has(q.Need) {
			continue
		}
		if a.o.Rules != nil {
			ns.OpenToAll = a.o.Rules.Get(ns.ID, ns.Org).OpenToAll
		} else {
			ns.OpenToAll = ns.Org == ""
		}
		if out = append(out, ns); len(out) == q.Limit {
			break
		}
	}
	return out
}

// availability works out what a station with opening hours hours and
// devices devs offers at now, from the devices' twins.
func availability(hours string, devs []devices.Device, twins *devices.Twins, now time.Time,
	loc *time.Location) Availability {
	av := Availability{Kinds: []schemas.Kind{}}
	locks, locksOpen := 0, 0
	for _, d := range devs {
		if !slices.Contains(av.Kinds, d.Kind) {
			av.Kinds = append(av.Kinds, d.Kind)
		}
		if d.Kind == schemas.KindLock {
			locks++
		}
		tw, ok := twins.Get(d.ID)
		if !ok || !tw.Online || len(tw.State) == 0 {
			continue // offline, or never reported: unavailable
		}
		switch d.Kind {
		case schemas.KindLock:
			var s schemas.LockState
			if json.Unmarshal(tw.State, &s) == nil && s.Mode != schemas.LockLockdown {
				locksOpen++
			}
		case schemas.KindCharger:
			var s schemas.ChargerState
			if json.Unmarshal(tw.State, &s) != nil || !s.Mains || s.Smoke {
				continue
			}
			for _, slot := range s.Slots {
				switch slot.State {
				case schemas.SlotEmpty:
					av.ChargerFreeSlots++
				case schemas.SlotFull:
					av.ChargerFullSlots++
				}
			}
		case schemas.KindAED:
			var s schemas.AEDState
			if json.Unmarshal(tw.State, &s) == nil && s.Ready && s.SelfTest == schemas.SelfTestPass &&
				!s.CabinetOpen {
				av.AEDReady = true
			}
		case schemas.KindAC:
			var s schemas.ACState
			if json.Unmarshal(tw.State, &s) != nil {
				continue
			}
			if av.RoomC == nil || s.RoomC < *av.RoomC {
				room := s.RoomC
				av.RoomC = &room
			}
			av.ACOn = av.ACOn || s.Power
		}
	}
	slices.Sort(av.Kinds)
	av.Cool = av.RoomC != nil && *av.RoomC >= CoolRoomMinC && *av.RoomC <= CoolRoomMaxC
	av.OpenNow = openAt(hours, now, loc) && (locks == 0 || locksOpen > 0)
	return av
}

// haversineM is the great-circle distance between two points, metres.
func haversineM(lat1, lon1, lat2, lon2 float64) float64 {
	rad := math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusM * math.Asin(math.Min(1, math.Sqrt(h)))
}
