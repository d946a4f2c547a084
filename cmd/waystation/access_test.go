package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/schemas"
)

// lockTerminal is a paho client logged in as a door terminal, subscribed
// to its access answers.
type lockTerminal struct {
	*device
	answers chan []byte
}

func connectTerminal(t *testing.T, ts *testServer, station, id, secret string) *lockTerminal {
	t.Helper()
	d, err := connectDevice(t, ts.mqtt, station, id, secret, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}
	l := &lockTerminal{device: d, answers: make(chan []byte, 16)}
	tok := d.c.Subscribe(schemas.DeviceTopic(station, id, schemas.ChannelAccessRes), 1,
		func(_ mqttClient, m mqttMessage) { l.answers <- m.Payload() })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	return l
}

// allowLists subscribes the terminal to its allow-list.
func (l *lockTerminal) allowLists(t *testing.T) <-chan schemas.AccessList {
	t.Helper()
	ch := make(chan schemas.AccessList, 16)
	tok := l.c.Subscribe(schemas.DeviceTopic(l.station, l.id, schemas.ChannelAccessList), 1,
		func(_ mqttClient, m mqttMessage) {
			if al, err := schemas.DecodeAccessList(m.Payload()); err == nil {
				ch <- al
			}
		})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	return ch
}

// nextAllowList waits for a list that satisfies ok.
func nextAllowList(t *testing.T, ch <-chan schemas.AccessList,
	ok func(schemas.AccessList) bool) schemas.AccessList {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case l := <-ch:
			if ok(l) {
				return l
			}
		case <-deadline:
			t.Fatal("no such allow-list")
		}
	}
}

// ask sends an access request and returns the answer.
func (l *lockTerminal) ask(t *testing.T, id, method, token string) schemas.AccessResponse {
	t.Helper()
	l.publish(t, schemas.ChannelAccessReq, false,
		`{"id":"`+id+`","method":"`+method+`","token":"`+token+`"}`)
	select {
	case p := <-l.answers:
		res, err := schemas.DecodeAccessResponse(p)
		if err != nil || res.ID != id {
			t.Fatalf("answer %s: %v", p, err)
		}
		return res
	case <-time.After(5 * time.Second):
		t.Fatal("no access answer")
	}
	return schemas.AccessResponse{}
}

// addStation adds a station of org through the API.
func (ts *testServer) addStation(t *testing.T, id, org, hours string, lat, lon float64) {
	t.Helper()
	st := map[string]any{"id": id, "name": "Station " + id, "lat": lat, "lon": lon, "org": org,
		"hours": hours}
	if code := ts.api(t, "POST", "/api/v1/stations", st, nil); code != 201 {
		t.Fatalf("add station %s: %d", id, code)
	}
}

// TestAccessEndToEnd: credentials issued and revoked through the CLI,
// asked for by a door terminal over MQTT.
func TestAccessEndToEnd(t *testing.T) {
	ts := startServer(t, nil)
	ts.addStation(t, "ys-a", "org-a", "24h", 32.63, 116.27)
	secret := ts.register(t, "ys-a", "ys-a-lock", schemas.KindLock)
	cli := func(args ...string) (string, string, error) {
		return runClient(append(args, "--server", ts.url, "--token", ts.token)...)
	}

	out, errOut, err := cli("credentials", "add", "--org", "org-a", "--worker", "张师傅",
		"--methods", "face,nfc", "-o", "json")
	var cr controller.NewCredential
	if err != nil || json.Unmarshal([]byte(out), &cr) != nil || cr.Token == "" {
		t.Fatalf("credentials add: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "Keep this token") || cr.ID != controller.CredentialID(cr.Token) {
		t.Fatalf("stderr %q, credential %+v", errOut, cr)
	}

	lock := connectTerminal(t, ts, "ys-a", "ys-a-lock", secret)
	lists := lock.allowLists(t)
	first := nextAllowList(t, lists, func(l schemas.AccessList) bool {
		return slices.Contains(l.Entries, cr.Hash)
	})
	if len(first.Entries) != 1 {
		t.Fatalf("allow-list %+v", first)
	}
	if res := lock.ask(t, "r1", "face", cr.Token); !res.Granted || res.UnlockS != 5 {
		t.Fatalf("answer %+v", res)
	}
	if res := lock.ask(t, "r2", "qr", cr.Token); res.Granted || res.Reason != "method_not_allowed" {
		t.Fatalf("answer %+v", res)
	}

	out, _, err = cli("credentials", "revoke", cr.Token)
	if err != nil || !strings.Contains(out, "revoked credential "+cr.ID) {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if res := lock.ask(t, "r3", "face", cr.Token); res.Granted || res.Reason != "revoked" {
		t.Fatalf("answer after revoke %+v", res)
	}
	nextAllowList(t, lists, func(l schemas.AccessList) bool {
		return l.Version > first.Version && len(l.Entries) == 0
	})

	out, _, err = cli("credentials", "list", "--org", "org-a")
	if err != nil || !strings.Contains(out, cr.ID) || !strings.Contains(out, "张师傅") ||
		strings.Contains(out, cr.Token) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	for reason, want := range map[string]float64{"granted": 1, "method_not_allowed": 1, "revoked": 1} {
		if got := ts.metric(t, "waystation_access_decisions_total", "reason", reason); got != want {
			t.Errorf("%s: %v, want %v", reason, got, want)
		}
	}

	_, _, err = cli("credentials", "revoke", "not-a-token")
	if err == nil || !strings.Contains(err.Error(), "neither a credential token") {
		t.Fatalf("revoke garbage: %v", err)
	}

	// The one granted entry is a visit: in the usage report, the metric and
	// the station's occupancy.
	out, _, err = cli("usage", "--station", "ys-a", "--by", "hour", "-o", "csv")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 || lines[0] != "station,start,visits,face,nfc,qr" ||
		!strings.HasPrefix(lines[1], "ys-a,") || !strings.HasSuffix(lines[1], ",1,1,0,0") {
		t.Fatalf("usage csv: %v\n%s", err, out)
	}
	out, _, err = cli("usage")
	if err != nil || !strings.Contains(out, "total") || !strings.Contains(out, "Asia/Shanghai") {
		t.Fatalf("usage table: %v\n%s", err, out)
	}
	if got := ts.metric(t, "waystation_visits_total", "method", "face"); got != 1 {
		t.Fatalf("visits metric %v", got)
	}
	var view controller.StationView
	ts.api(t, "GET", "/api/v1/stations/ys-a", nil, &view)
	if view.Occupancy == nil || view.Occupancy.People != 1 || view.Occupancy.Source != "estimate" {
		t.Fatalf("occupancy %+v", view.Occupancy)
	}
	if _, _, err := cli("usage", "-o", "xml"); err == nil || !strings.Contains(err.Error(), "csv") {
		t.Fatalf("-o xml: %v", err)
	}
}

// TestStationsNearestCLI: the nearest search needs no token; a station
// whose charger is online with an empty slot comes first for a charger,
// one whose charger never came online does not come at all.
func TestStationsNearestCLI(t *testing.T) {
	ts := startServer(t, nil)
	ts.addStation(t, "ys-near", "", "24h", 32.630, 116.270)
	ts.addStation(t, "ys-far", "", "24h", 32.650, 116.290)
	ts.register(t, "ys-near", "ys-near-charger", schemas.KindCharger)
	d := ts.online(t, "ys-far", "ys-far-charger", schemas.KindCharger, "c1")
	d.publish(t, schemas.ChannelTelemetry, false,
		`{"slots":[{"slot":1,"state":"empty"},{"slot":2,"state":"full"}],"smoke":false,"mains":true}`)
	eventually(t, 5*time.Second, "the charger's twin", func() bool {
		v := ts.twinCLI(t, "ys-far-charger")
		return v.Twin != nil && v.Twin.Online && v.Twin.State != nil
	})

	t.Setenv(envToken, "")
	base := []string{"stations", "nearest", "--lat", "32.63", "--lon", "116.27", "--server", ts.url}
	out, _, err := runClient(append(base, "-o", "json")...)
	var all []controller.NearestStation
	if err != nil || json.Unmarshal([]byte(out), &all) != nil || len(all) != 2 ||
		all[0].ID != "ys-near" || all[1].ChargerFreeSlots != 1 {
		t.Fatalf("%v\n%s", err, out)
	}
	out, _, err = runClient(append(base, "--need", "charger")...)
	if err != nil || !strings.Contains(out, "ys-far") || strings.Contains(out, "ys-near") ||
		!strings.Contains(out, "1 free, 1 charged") {
		t.Fatalf("%v\n%s", err, out)
	}
	_, _, err = runClient(append(base, "--need", "water")...)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "need") {
		t.Fatalf("bad need: %v", err)
	}
}

// TestServeRefusesBadAccessFlags: start-up fails at once naming the flag.
func TestServeRefusesBadAccessFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--unlock-seconds", "601"}, "--unlock-seconds"},
		{[]string{"--access-rate", "-1"}, "--access-rate"},
		{[]string{"--access-burst", "100000"}, "--access-burst"},
		{[]string{"--allowlist-stale", "-1h"}, "--allowlist-stale"},
		{[]string{"--usage-retention-days", "-3"}, "--usage-retention-days"},
	} {
		args := append([]string{"serve", "--data", t.TempDir(), "--mqtt", "127.0.0.1:0",
			"--http", "127.0.0.1:0", "--ws", ""}, tc.args...)
		_, err := runCLI(args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}
