package controller

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// report publishes a device's status and telemetry through the broker and
// waits until its twin shows them.
func (r *accessRig) report(t *testing.T, device string, online bool, state string) {
	t.Helper()
	d := r.device(t, device)
	before, _ := r.twins.Get(device)
	status := fmt.Sprintf(`{"online":%v,"kind":"%s"}`, online, d.Kind)
	if err := r.bus.Publish(schemas.DeviceTopic(d.Station, d.ID, schemas.ChannelStatus), 1, false,
		[]byte(status)); err != nil {
		t.Fatal(err)
	}
	if state != "" {
		if err := r.bus.Publish(schemas.DeviceTopic(d.Station, d.ID, schemas.ChannelTelemetry), 1,
			false, []byte(state)); err != nil {
			t.Fatal(err)
		}
	}
	want := before.Messages + 1
	if state != "" {
		want++
	}
	waitFor(t, device+" reported", func() bool {
		tw, _ := r.twins.Get(device)
		return tw.Messages == want
	})
	if !online && state != "" {
		// Telemetry brings a device back online; this one is to stay off.
		r.twins.MarkOffline(device, r.clock.Now())
	}
}

func nearestOf(t *testing.T, s *scoped, query string) []NearestStation {
	t.Helper()
	code, body := call(t, s.srv, "", "GET", "/api/v1/stations/nearest?"+query, "")
	var out []NearestStation
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil {
		t.Fatalf("%s: %d %s", query, code, body)
	}
	return out
}

func ids(list []NearestStation) string {
	var out []string
	for _, ns := range list {
		out = append(out, ns.ID)
	}
	return strings.Join(out, ",")
}

const (
	lockNormal   = `{"door":"closed","bolt":"locked","mode":"normal"}`
	lockLockdown = `{"door":"closed","bolt":"locked","mode":"lockdown"}`
)

func acState(power bool, roomC float64) string {
	return fmt.Sprintf(`{"power":%v,"mode":"cool","setpoint_c":26,"room_c":%v}`, power, roomC)
}

func TestNearestStations(t *testing.T) {
	s := newScoped(t, APIOptions{})
	r := s.accessRig
	for _, d := range []devices.Device{
		{ID: "ys-a-charger", Station: "ys-a", Kind: schemas.KindCharger},
		{ID: "ys-n-charger", Station: "ys-n", Kind: schemas.KindCharger},
		{ID: "ys-b-aed", Station: "ys-b", Kind: schemas.KindAED},
	} {
		if _, _, err := r.reg.AddDevice(d); err != nil {
			t.Fatal(err)
		}
	}
	charger := `{"slots":[{"slot":1,"state":"empty"},{"slot":2,"state":"empty"},` +
		`{"slot":3,"state":"full"},{"slot":4,"state":"charging"},{"slot":5,"state":"fault"}],` +
		`"smoke":false,"mains":true}`
	aed := func(open bool) string {
		return fmt.Sprintf(`{"ready":true,"self_test":"pass","battery_pct":90,`+
			`"pads_expire":"2027-01-01","cabinet_open":%v}`, open)
	}
	r.report(t, "ys-a-lock", true, lockNormal)
	r.report(t, "ys-a-ac", true, acState(true, 27))
	r.report(t, "ys-a-charger", true, charger)
	r.report(t, "ys-b-lock", true, lockNormal)
	r.report(t, "ys-b-ac", true, acState(false, 31))
	r.report(t, "ys-b-aed", true, aed(false))
	r.report(t, "ys-n-lock", true, lockNormal)
	r.report(t, "ys-n-ac", false, acState(true, 20))           // offline: its cool room does not count
	r.report(t, "ys-n-charger", false, charger)                // offline: no free slot
	r.clock.Set(time.Date(2025, 7, 15, 12, 0, 0, 0, shanghai)) // ys-n (22:00-06:00) is closed

	// From beside ys-n: ys-n, then ys-a (0.01° off both ways), then ys-b.
	all := nearestOf(t, s, "lat=32.62&lon=116.26")
	if got := ids(all); got != "ys-n,ys-a,ys-b" {
		t.Fatalf("order %s", got)
	}
	// An independent flat-earth estimate, good to a fraction of a percent
	// at this range: metres per degree of latitude, and of longitude here.
	dy, dx := 0.01*111195.0, 0.01*111195.0*math.Cos(32.625*math.Pi/180)
	want := math.Hypot(dx, dy) * 1.3
	if d := float64(all[1].DistanceM); math.Abs(d-want) > want*0.005 || all[0].DistanceM != 0 {
		t.Fatalf("distances %d, %d; want 0, about %.0f", all[0].DistanceM, all[1].DistanceM, want)
	}
	if all[1].WalkMin != int(math.Ceil(want/(5000.0/60))) {
		t.Fatalf("walk %d min for %d m", all[1].WalkMin, all[1].DistanceM)
	}

	n, a, b := all[0], all[1], all[2]
	if n.OpenNow || n.ChargerFreeSlots != 0 || n.Cool || n.RoomC != nil || n.ACOn || !n.OpenToAll {
		t.Fatalf("ys-n %+v", n)
	}
	if !a.OpenNow || a.ChargerFreeSlots != 2 || a.ChargerFullSlots != 1 || !a.Cool ||
		*a.RoomC != 27 || !a.ACOn || a.AEDReady || a.OpenToAll || a.Org != "org-a" {
		t.Fatalf("ys-a %+v", a)
	}
	if !b.OpenNow || !b.AEDReady || b.Cool || b.ACOn || *b.RoomC != 31 ||
		strings.Join(kindNames(b.Kinds), ",") != "ac,aed,lock" {
		t.Fatalf("ys-b %+v", b)
	}

	for _, tc := range []struct{ query, want string }{
		{"need=charger", "ys-a"},
		{"need=aed", "ys-b"},
		{"need=cool", "ys-a"},
		{"open=now", "ys-a,ys-b"},
		{"limit=1", "ys-n"},
		{"open=now&limit=1", "ys-a"},
	} {
		if got := ids(nearestOf(t, s, "lat=32.62&lon=116.26&"+tc.query)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.query, got, tc.want)
		}
	}

	// What changes changes the answers: an AED in use, a charger going
	// offline, a lockdown, a door terminal going offline.
	r.report(t, "ys-b-aed", true, aed(true))
	if got := ids(nearestOf(t, s, "lat=32.62&lon=116.26&need=aed")); got != "" {
		t.Fatalf("an opened AED cabinet is still ready: %s", got)
	}
	r.report(t, "ys-a-charger", false, "")
	if got := ids(nearestOf(t, s, "lat=32.62&lon=116.26&need=charger")); got != "" {
		t.Fatalf("an offline charger still offers slots: %s", got)
	}
	// A freezing room is not a cool room.
	r.report(t, "ys-a-ac", true, acState(false, 4.5))
	if got := ids(nearestOf(t, s, "lat=32.62&lon=116.26&need=cool")); got != "" {
		t.Fatalf("a room at 4.5 °C is cool: %s", got)
	}
	r.report(t, "ys-a-lock", true, lockLockdown)
	r.report(t, "ys-b-lock", false, "")
	if got := ids(nearestOf(t, s, "lat=32.62&lon=116.26&open=now")); got != "" {
		t.Fatalf("open now: %s", got)
	}
}

func kindNames(ks []schemas.Kind) []string {
	var out []string
	for _, k := range ks {
		out = append(out, string(k))
	}
	return out
}

func TestNearestRefusesBadQueries(t *testing.T) {
	s := newScoped(t, APIOptions{})
	for _, tc := range []struct{ query, want string }{
		{"lon=116.2", "lat is missing"},
		{"lat=32.6", "lon is missing"},
		{"lat=91&lon=116", "lat"},
		{"lat=32&lon=-180.5", "lon"},
		{"lat=NaN&lon=116", "lat"},
		{"lat=abc&lon=116", "lat"},
		{"lat=32&lon=116&need=water", "need"},
		{"lat=32&lon=116&open=later", "open"},
		{"lat=32&lon=116&limit=0", "limit"},
		{"lat=32&lon=116&limit=51", "limit"},
		{"lat=32&lon=116&limit=x", "limit"},
	} {
		code, body := call(t, s.srv, "", "GET", "/api/v1/stations/nearest?"+tc.query, "")
		var e Error
		if code != 400 || json.Unmarshal([]byte(body), &e) != nil ||
			!strings.Contains(e.Error, tc.want) {
			t.Errorf("%s: %d %s, want 400 about %s", tc.query, code, body, tc.want)
		}
	}
	// It needs no token, and a token changes nothing.
	code, _ := call(t, s.srv, "", "GET", "/api/v1/stations/nearest?lat=32&lon=116", "")
	if code != 200 {
		t.Fatalf("without a token: %d", code)
	}
	code, _ = call(t, s.srv, s.tokens[RoleMonitor], "GET", "/api/v1/stations/ys-a", "")
	if code != 200 {
		t.Fatalf("the station route still works: %d", code)
	}
}
