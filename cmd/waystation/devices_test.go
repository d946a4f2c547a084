package main

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// fixtureWithStations is an API fixture holding stations ys-001 and ys-002.
func fixtureWithStations(t *testing.T) *apiFixture {
	t.Helper()
	f := newAPIFixture(t)
	for _, id := range []string{"ys-001", "ys-002"} {
		if _, err := f.reg.AddStation(devices.Station{ID: id, Name: "驿站 " + id, Lat: 32.6, Lon: 116.2,
			Hours: "24h"}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestDevicesAdd(t *testing.T) {
	f := fixtureWithStations(t)

	// As a table: the secret, once, with the note.
	out, errOut, err := runClient(f.args("devices", "add", "--station", "ys-001", "--kind", "ac",
		"--id", "ys-001-ac1", "--model", "KFR-35GW", "--interval", "30s")...)
	if err != nil {
		t.Fatal(err)
	}
	secret := ""
	for line := range strings.Lines(out) {
		if s, ok := strings.CutPrefix(line, "secret: "); ok {
			secret = strings.TrimSpace(s)
		}
	}
	if _, err := f.reg.Authenticate("ys-001-ac1", []byte(secret)); err != nil {
		t.Errorf("the printed secret %q does not authenticate: %v\n%s", secret, err, out)
	}
	if !strings.HasPrefix(out, "registered ac device ys-001-ac1 at station ys-001\n") ||
		!strings.Contains(out, "cannot show it again") || errOut != "" {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out, errOut)
	}
	d, err := f.reg.Device("ys-001-ac1")
	if err != nil {
		t.Fatal(err)
	}
	want := devices.Device{ID: "ys-001-ac1", Station: "ys-001", Kind: schemas.KindAC, Model: "KFR-35GW",
		IntervalS: 30, Created: d.Created}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("registered %+v\nwant %+v", d, want)
	}

	// As JSON: stdout is the API's answer alone; the note goes to stderr.
	out, errOut, err = runClient(f.args("devices", "add", "--station", "ys-001", "--kind", "lock",
		"--id", "ys-001-door", "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	var nd controller.NewDevice
	if err := json.Unmarshal([]byte(out), &nd); err != nil {
		t.Fatalf("add -o json: %v\n%s", err, out)
	}
	if nd.ID != "ys-001-door" || nd.Kind != schemas.KindLock || nd.Station != "ys-001" {
		t.Errorf("add -o json: %+v", nd)
	}
	if _, err := f.reg.Authenticate(nd.ID, []byte(nd.Secret)); err != nil {
		t.Errorf("the JSON secret does not authenticate: %v", err)
	}
	if !strings.Contains(errOut, "cannot show it again") {
		t.Errorf("stderr lacks the note: %q", errOut)
	}
}

func TestDevicesAddRefused(t *testing.T) {
	f := fixtureWithStations(t)
	add := func(args ...string) error {
		_, _, err := runClient(f.args(append([]string{"devices", "add"}, args...)...)...)
		return err
	}

	// Refused here, before any request.
	local := []struct {
		args []string
		want string
	}{
		{[]string{"--station", "ys-001", "--kind", "fan", "--id", "d1"},
			`invalid: device d1: unknown kind "fan" (want lock, ac, charger or aed)`},
		{[]string{"--station", "ys-001", "--kind", "ac", "--id", "D 1"},
			`invalid: device id "D 1": want [a-z0-9][a-z0-9-]{0,31}`},
		{[]string{"--station", "../x", "--kind", "ac", "--id", "d1"},
			`station id "../x": want [a-z0-9][a-z0-9-]{0,31}`},
		{[]string{"--station", "ys-001", "--kind", "ac", "--id", "d1", "--interval", "1.5s"},
			"--interval 1.5s: want whole seconds, e.g. 30s"},
		{[]string{"--station", "ys-001", "--kind", "ac", "--id", "d1", "--interval", "-30s"},
			"--interval -30s: want whole seconds, e.g. 30s"},
		{[]string{"--station", "ys-001", "--id", "d1"}, `required flag(s) "kind" not set`},
	}
	for _, tt := range local {
		if err := add(tt.args...); err == nil || err.Error() != tt.want {
			t.Errorf("%v: %v\nwant %s", tt.args, err, tt.want)
		}
	}
	if n := f.requests.Load(); n != 0 {
		t.Errorf("%d requests for devices refused locally", n)
	}

	// Refused by the server.
	err := add("--station", "ys-404", "--kind", "ac", "--id", "d1")
	want := `register device d1: device d1: station "ys-404": not found (HTTP 404 Not Found)`
	if err == nil || err.Error() != want {
		t.Errorf("unknown station: %v\nwant %s", err, want)
	}
	if err := add("--station", "ys-001", "--kind", "ac", "--id", "d1"); err != nil {
		t.Fatal(err)
	}
	err = add("--station", "ys-002", "--kind", "ac", "--id", "d1")
	want = "register device d1: device d1: already exists (HTTP 409 Conflict)"
	if err == nil || err.Error() != want {
		t.Errorf("device twice: %v\nwant %s", err, want)
	}
}

func TestDevicesListAndShow(t *testing.T) {
	f := fixtureWithStations(t)
	register := func(station, id string, kind schemas.Kind) devices.Device {
		d, _, err := f.reg.AddDevice(devices.Device{ID: id, Station: station, Kind: kind, IntervalS: 30})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	ac := register("ys-001", "ys-001-ac1", schemas.KindAC)
	register("ys-001", "ys-001-door", schemas.KindLock)
	register("ys-002", "ys-002-aed", schemas.KindAED)

	// The AC has connected and reported; the others never have.
	connected := time.Now().Add(-5 * time.Minute).UTC().Truncate(time.Millisecond)
	reported := connected.Add(4 * time.Minute)
	f.twins.ApplyStatus(ac, schemas.Status{Online: true, Kind: schemas.KindAC, Firmware: "1.4.2",
		Conn: "c1"}, connected)
	room, outdoor := 27.5, 35.2
	_, err := f.twins.ApplyTelemetry(ac, schemas.Telemetry{
		Meta: schemas.Meta{Seq: 42, TS: reported.Add(1500 * time.Millisecond).UnixMilli()},
		Kind: schemas.KindAC,
		AC: &schemas.ACState{Power: true, Mode: schemas.ModeCool, SetpointC: 26, RoomC: room,
			OutdoorC: &outdoor},
	}, reported)
	if err != nil {
		t.Fatal(err)
	}

	// list -o json is the API's answer, twins included.
	out, _, err := runClient(f.args("devices", "list", "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	var list []controller.DeviceView
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list -o json: %v\n%s", err, out)
	}
	var ids []string
	for _, v := range list {
		ids = append(ids, v.ID)
	}
	if !reflect.DeepEqual(ids, []string{"ys-001-ac1", "ys-001-door", "ys-002-aed"}) {
		t.Errorf("listed %v", ids)
	}
	if list[0].Twin == nil || !list[0].Twin.Online || list[0].Twin.Firmware != "1.4.2" ||
		list[1].Twin != nil {
		t.Errorf("twins in the list: %+v, %+v", list[0].Twin, list[1].Twin)
	}

	// The table, filtered by station.
	out, _, err = runClient(f.args("devices", "list", "--station", "ys-001")...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("list --station ys-001:\n%s", out)
	}
	wantRows := [][]string{
		{"STATION", "DEVICE", "KIND", "MODEL", "FIRMWARE", "ONLINE", "LAST", "SEEN"},
		append([]string{"ys-001", "ys-001-ac1", "ac", "-", "1.4.2", "yes"},
			strings.Fields(reported.Local().Format(timeLayout))...),
		{"ys-001", "ys-001-door", "lock", "-", "-", "never", "seen", "-"},
	}
	for i, line := range lines {
		if got := strings.Fields(line); !reflect.DeepEqual(got, wantRows[i]) {
			t.Errorf("row %d: %q, want %q", i, got, wantRows[i])
		}
	}
	// A mistyped station is an error, not an empty list.
	out, _, err = runClient(f.args("devices", "list", "--station", "ys-009")...)
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("list of an unknown station: %q, %v", out, err)
	}

	// show -o json parses back to the twin.
	out, _, err = runClient(f.args("devices", "show", "ys-001-ac1", "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	var v controller.DeviceView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("show -o json: %v\n%s", err, out)
	}
	tw, _ := f.twins.Get("ys-001-ac1")
	if v.Twin == nil || !v.Twin.Online || !v.Twin.ConnectedSince.Equal(connected) ||
		!v.Twin.LastSeen.Equal(reported) || compactJSON(v.Twin.State) != compactJSON(tw.State) ||
		v.Twin.Seq != 42 || v.Twin.ClockSkewMS != 1500 {
		t.Errorf("show -o json: %+v", v.Twin)
	}

	// show as fields.
	out, _, err = runClient(f.args("devices", "show", "ys-001-ac1")...)
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for line := range strings.Lines(out) {
		// Two spaces or more part a name from its value.
		name, value, _ := strings.Cut(strings.TrimSpace(line), "  ")
		fields[name] = strings.TrimSpace(value)
	}
	for name, want := range map[string]string{
		"device":     "ys-001-ac1",
		"station":    "ys-001",
		"kind":       "ac",
		"firmware":   "1.4.2",
		"interval":   "30s",
		"online":     "yes",
		"clock skew": "+1.5s (device ahead)",
		"messages":   "2 (last seq 42)",
		"mode":       "cool",
		"power":      "true",
		"room_c":     "27.5",
		"outdoor_c":  "35.2",
		"setpoint_c": "26",
	} {
		if got := fields[name]; got != want {
			t.Errorf("show: %s is %q, want %q", name, fields[name], want)
		}
	}
	// Ages are to the second, and the clock runs on while the test does.
	for name, want := range map[string]*regexp.Regexp{
		"connected since": agoRE(connected, "5m"),
		"last seen":       agoRE(reported, "1m"),
		"state":           regexp.MustCompile("^reported " + agoRE(reported, "1m").String()[1:]),
	} {
		if !want.MatchString(fields[name]) {
			t.Errorf("show: %s is %q, want %s", name, fields[name], want)
		}
	}

	// A device never seen.
	out, _, err = runClient(f.args("devices", "show", "ys-002-aed")...)
	if err != nil || !strings.Contains(out, "online      never seen") {
		t.Errorf("show of a device never seen: %v\n%s", err, out)
	}

	// Unknown and impossible ids.
	_, _, err = runClient(f.args("devices", "show", "ys-404")...)
	want := "show device ys-404: device ys-404: not found (HTTP 404 Not Found)"
	if err == nil || err.Error() != want {
		t.Errorf("unknown device: %v\nwant %s", err, want)
	}
	before := f.requests.Load()
	_, _, err = runClient(f.args("devices", "show", "..")...)
	if err == nil || err.Error() != `device id "..": want [a-z0-9][a-z0-9-]{0,31}` {
		t.Errorf("device ..: %v", err)
	}
	if f.requests.Load() != before {
		t.Error("an impossible id was sent")
	}
}

// agoRE matches t in local time followed by an age of minutes and seconds.
func agoRE(t time.Time, minutes string) *regexp.Regexp {
	return regexp.MustCompile("^" + regexp.QuoteMeta(t.Local().Format(timeLayout)) + ` \(` +
		minutes + `\d+s ago\)$`)
}

func TestStateRows(t *testing.T) {
	state := json.RawMessage(`{"smoke":false,"slots":[{"slot":1,"state":"charging","soc_pct":40},` +
		`{"slot":2,"state":"empty"}],"cabinet_c":31.5,"mains":true,"note":"门口"}`)
	want := [][]string{
		{"  cabinet_c", "31.5"},
		{"  mains", "true"},
		{"  note", "门口"},
		{"  slots", `{"slot":1,"state":"charging","soc_pct":40}`},
		{"", `{"slot":2,"state":"empty"}`},
		{"  smoke", "false"},
	}
	if got := stateRows(state); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
