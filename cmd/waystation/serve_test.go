package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChildArgs) != "" {
		os.Exit(childMain()) // a server process of a test
	}
	goleak.VerifyTestMain(m,
		// paho's and net/http's idle keep-alive goroutines end on their own
		// timers after a test returns.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// acTelemetry is a valid AC telemetry payload.
func acTelemetry(seq int, roomC float64) string {
	return fmt.Sprintf(`{"power":true,"mode":"cool","setpoint_c":26,"room_c":%s,"outdoor_c":35.2,`+
		`"humidity_pct":70,"power_w":1180,"fault":"","ts":%d,"seq":%d}`,
		ftoa(roomC), time.Now().UnixMilli(), seq)
}

// TestEndToEnd registers a device through the API, publishes as that
// device with a third-party client and with paho, and reads the twin back
// through the CLI.
func TestEndToEnd(t *testing.T) {
	requireMosquitto(t)
	ts := startServer(t, nil)
	secret := ts.register(t, "ys-001", "ys-001-ac", schemas.KindAC)

	// mosquitto_pub: retained online status, then telemetry.
	status := `{"online":true,"kind":"ac","firmware":"3.2.1","model":"KFR-35GW","conn":"m1"}`
	mosquittoPub(t, ts.mqtt, "ys-001-ac", secret,
		schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelStatus), status, "-r")
	mosquittoPub(t, ts.mqtt, "ys-001-ac", secret,
		schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelTelemetry), acTelemetry(1, 29.5))

	var v controller.DeviceView
	eventually(t, 5*time.Second, "twin shows the mosquitto_pub telemetry", func() bool {
		v = ts.twinCLI(t, "ys-001-ac")
		return v.Twin != nil && v.Twin.Seq == 1
	})
	var st schemas.ACState
	if err := json.Unmarshal(v.Twin.State, &st); err != nil {
		t.Fatal(err)
	}
	if !v.Twin.Online || v.Twin.Firmware != "3.2.1" || st.RoomC != 29.5 || st.Mode != "cool" {
		t.Fatalf("twin after mosquitto_pub: %+v state %+v", v.Twin, st)
	}

	// paho: the same device, new values.
	d, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-ac", secret, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}
	d.publish(t, schemas.ChannelTelemetry, false, acTelemetry(2, 27.25))
	eventually(t, 5*time.Second, "twin shows the paho telemetry", func() bool {
		v = ts.twinCLI(t, "ys-001-ac")
		return v.Twin.Seq == 2
	})
	json.Unmarshal(v.Twin.State, &st)
	if st.RoomC != 27.25 {
		t.Fatalf("room %v after paho telemetry", st.RoomC)
	}
	if got := ts.metric(t, "waystation_messages_total", "channel", "telemetry", "result", "ok"); got != 2 {
		t.Fatalf("telemetry ok = %v, want 2", got)
	}
}

// TestForeignTopicRefused: a device publishing under another device's topic
// is refused and counted; its own messages still flow.
func TestForeignTopicRefused(t *testing.T) {
	ts := startServer(t, nil)
	secretA := ts.register(t, "ys-001", "ys-001-ac", schemas.KindAC)
	ts.register(t, "ys-002", "ys-002-ac", schemas.KindAC)

	a, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-ac", secretA, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}
	denied := ts.metric(t, "waystation_broker_denied_total", "action", "publish")
	// QoS 0 so the MQTT 3.1.1 client is not disconnected for the refusal.
	a.c.Publish(schemas.DeviceTopic("ys-002", "ys-002-ac", schemas.ChannelTelemetry), 0, false,
		acTelemetry(1, 31)).WaitTimeout(time.Second)
	eventually(t, 5*time.Second, "the foreign publish is counted", func() bool {
		return ts.metric(t, "waystation_broker_denied_total", "action", "publish") == denied+1
	})

	a.publish(t, schemas.ChannelTelemetry, false, acTelemetry(5, 28))
	eventually(t, 5*time.Second, "own telemetry still processed", func() bool {
		return ts.twinCLI(t, "ys-001-ac").Twin != nil && ts.twinCLI(t, "ys-001-ac").Twin.Seq == 5
	})
	if v := ts.twinCLI(t, "ys-002-ac"); v.Twin != nil {
		t.Fatalf("the foreign message reached ys-002-ac's twin: %+v", v.Twin)
	}
}

// TestInvalidMessagesRefused: each bad payload is refused with a reason and
// counted, and the next good message is processed.
func TestInvalidMessagesRefused(t *testing.T) {
	ts := startServer(t, nil)
	secret := ts.register(t, "ys-001", "ys-001-ac", schemas.KindAC)
	d, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-ac", secret, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, ch, payload, reason string
	}{
		{"malformed JSON", "telemetry", `{"power":true,`, ""},
		{"wrong type", "telemetry", `{"power":"yes","mode":"cool","setpoint_c":26,"room_c":28}`, "power"},
		{"impossible value", "telemetry", `{"power":true,"mode":"cool","setpoint_c":26,"room_c":900}`,
			"room_c"},
		{"unknown kind", "status", `{"online":true,"kind":"toaster"}`, "kind"},
		{"kind not as registered", "status", `{"online":true,"kind":"lock"}`, "kind"},
	}
	seq := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.metric(t, "waystation_messages_total", "channel", tc.ch, "result", "invalid")
			d.publish(t, schemas.Channel(tc.ch), false, tc.payload)
			eventually(t, 5*time.Second, "refusal counted", func() bool {
				return ts.metric(t, "waystation_messages_total", "channel", tc.ch,
					"result", "invalid") == before+1
			})
			v := ts.twinCLI(t, "ys-001-ac")
			if v.Twin == nil || !strings.Contains(v.Twin.LastInvalid, tc.reason) {
				t.Fatalf("twin's reason %q does not name %q", v.Twin.LastInvalid, tc.reason)
			}

			seq++
			d.publish(t, schemas.ChannelTelemetry, false, acTelemetry(seq, 28))
			eventually(t, 5*time.Second, "next good message processed", func() bool {
				return ts.twinCLI(t, "ys-001-ac").Twin.Seq == uint64(seq)
			})
		})
	}

	// 100 KiB is over the 64 KiB packet limit: the broker drops the
	// connection and counts it; nothing reaches the twin; the device
	// reconnects and carries on.
	t.Run("100 KiB payload", func(t *testing.T) {
		before := ts.metric(t, "waystation_broker_denied_total", "reason", "too_large")
		big := `{"power":true,"mode":"cool","setpoint_c":26,"room_c":28,"pad":"` +
			strings.Repeat("x", 100<<10) + `"}`
		d.c.Publish(schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelTelemetry), 1, false, big).
			WaitTimeout(2 * time.Second)
		eventually(t, 5*time.Second, "oversize packet counted", func() bool {
			return ts.metric(t, "waystation_broker_denied_total", "reason", "too_large") == before+1
		})
		eventually(t, 5*time.Second, "connection dropped", func() bool { return !d.c.IsConnectionOpen() })

		d2, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-ac", secret, deviceOpts{})
		if err != nil {
			t.Fatal(err)
		}
		seq++
		d2.publish(t, schemas.ChannelTelemetry, false, acTelemetry(seq, 27))
		eventually(t, 5*time.Second, "good message after reconnect", func() bool {
			return ts.twinCLI(t, "ys-001-ac").Twin.Seq == uint64(seq)
		})
	})
}

// TestLastWillMarksOffline: a device killed without DISCONNECT shows offline
// through its retained last will.
func TestLastWillMarksOffline(t *testing.T) {
	ts := startServer(t, nil)
	secret := ts.register(t, "ys-001", "ys-001-lock", schemas.KindLock)
	will := `{"online":false,"kind":"lock","conn":"c1"}`
	d, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-lock", secret, deviceOpts{will: will})
	if err != nil {
		t.Fatal(err)
	}
	d.publish(t, schemas.ChannelStatus, true, `{"online":true,"kind":"lock","conn":"c1"}`)
	eventually(t, 5*time.Second, "online", func() bool {
		v := ts.twinCLI(t, "ys-001-lock")
		return v.Twin != nil && v.Twin.Online
	})

	d.cut()
	eventually(t, 5*time.Second, "offline through the will", func() bool {
		return !ts.twinCLI(t, "ys-001-lock").Twin.Online
	})

	// A new subscriber sees the retained offline status.
	got := retainedStatus(t, ts, "ys-001", "ys-001-lock")
	if got.Online || got.Conn != "c1" {
		t.Fatalf("retained status %+v", got)
	}
}

// TestReconnectWhileHalfOpen: the device reconnects with the same client id
// while its old connection lingers; the old connection's will must not mark
// it offline.
func TestReconnectWhileHalfOpen(t *testing.T) {
	ts := startServer(t, nil)
	secret := ts.register(t, "ys-001", "ys-001-ac", schemas.KindAC)

	// The will carries no conn, so only the broker can keep it from
	// overwriting the newer connection's status.
	will := `{"online":false,"kind":"ac"}`
	old, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-ac", secret, deviceOpts{will: will})
	if err != nil {
		t.Fatal(err)
	}
	old.publish(t, schemas.ChannelStatus, true, `{"online":true,"kind":"ac","conn":"old"}`)

	// The old connection stays open on the broker's side: nothing is
	// closed, the device just starts over.
	fresh, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-ac", secret, deviceOpts{will: will})
	if err != nil {
		t.Fatal(err)
	}
	fresh.publish(t, schemas.ChannelStatus, true, `{"online":true,"kind":"ac","conn":"new"}`)
	fresh.publish(t, schemas.ChannelTelemetry, false, acTelemetry(9, 28))

	eventually(t, 5*time.Second, "online on the new connection", func() bool {
		v := ts.twinCLI(t, "ys-001-ac")
		return v.Twin != nil && v.Twin.Conn == "new" && v.Twin.Seq == 9
	})
	time.Sleep(300 * time.Millisecond) // let a late will arrive, if one would
	if v := ts.twinCLI(t, "ys-001-ac"); !v.Twin.Online {
		t.Fatalf("device ended offline: %+v", v.Twin)
	}
	if st := retainedStatus(t, ts, "ys-001", "ys-001-ac"); !st.Online || st.Conn != "new" {
		t.Fatalf("retained status %+v", st)
	}
}

// TestRetainedCommandRefused: a retained publish to a cmd topic never
// reaches a device, now or on a later subscription.
func TestRetainedCommandRefused(t *testing.T) {
	ts := startServer(t, nil)
	secret := ts.register(t, "ys-001", "ys-001-lock", schemas.KindLock)
	d, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-lock", secret, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	cmdTopic := schemas.DeviceTopic("ys-001", "ys-001-lock", schemas.ChannelCmd)
	tok := d.c.Subscribe(cmdTopic, 1, func(_ mqttClient, m mqttMessage) { got <- string(m.Payload()) })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	bus := ts.s.mqtt.Bus()
	exp := time.Now().Add(time.Minute).UnixMilli()
	retained := `{"id":"c-retained","name":"lock.unlock","args":{"seconds":5},"expires_at":` + itoa(exp) + `}`
	plain := `{"id":"c-plain","name":"lock.unlock","args":{"seconds":5},"expires_at":` + itoa(exp) + `}`
	if err := bus.Publish(cmdTopic, 1, true, []byte(retained)); err != nil {
		t.Logf("retained publish returned %v", err)
	}
	if err := bus.Publish(cmdTopic, 1, false, []byte(plain)); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if !strings.Contains(p, "c-plain") {
			t.Fatalf("device received %s", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the plain command did not arrive")
	}
	select {
	case p := <-got:
		t.Fatalf("device also received %s", p)
	case <-time.After(300 * time.Millisecond):
	}

	// A later subscriber gets no retained command either.
	d.c.Disconnect(50)
	d2, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-lock", secret, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}
	d2.c.Subscribe(cmdTopic, 1, func(_ mqttClient, m mqttMessage) { got <- string(m.Payload()) }).
		WaitTimeout(5 * time.Second)
	select {
	case p := <-got:
		t.Fatalf("a retained command replayed on subscribe: %s", p)
	case <-time.After(500 * time.Millisecond):
	}
	if n := ts.metric(t, "waystation_broker_denied_total", "reason", "retained_cmd"); n < 1 {
		t.Fatalf("retained cmd not counted (%v)", n)
	}
}

// TestDemoCounty: within 15 s of serve --demo the API lists 129 stations and
// every simulated device is online.
func TestDemoCounty(t *testing.T) {
	start := time.Now()
	ts := startServer(t, func(o *serveOptions) { o.demo = true })
	var stations []map[string]any
	var devs []controller.DeviceView
	eventually(t, 15*time.Second-time.Since(start), "129 stations and every device online", func() bool {
		if ts.api(t, "GET", "/api/v1/stations", nil, &stations) != 200 || len(stations) != 129 {
			return false
		}
		if ts.api(t, "GET", "/api/v1/devices", nil, &devs) != 200 || len(devs) < 129*2 {
			return false
		}
		for _, d := range devs {
			if d.Twin == nil || !d.Twin.Online || d.Twin.State == nil {
				return false
			}
		}
		return true
	})
	t.Logf("129 stations, %d devices online after %v", len(devs), time.Since(start).Round(time.Millisecond))

	// The simulated workers carry credentials the platform issued, so
	// their visits can be granted.
	buf, err := os.ReadFile(filepath.Join(ts.data, "demo-workers.json"))
	if err != nil {
		t.Fatal(err)
	}
	var byOrg map[string][]string
	if err := json.Unmarshal(buf, &byOrg); err != nil || len(byOrg) != 21 {
		t.Fatalf("demo workers of %d organisations, want 21: %v", len(byOrg), err)
	}
	for org, tokens := range byOrg {
		for _, tok := range tokens {
			if cr, ok := ts.s.acc.creds.Lookup(tok); !ok || cr.Org != org {
				t.Fatalf("demo worker token of %s not issued by the platform", org)
			}
		}
	}
}

// TestServeRefusesBadFlags: start-up fails at once with a message saying what
// to fix.
func TestServeRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--mqtt", "nonsense"}, "--mqtt"},
		{[]string{"serve", "--http", "1.2.3.4"}, "--http"},
		{[]string{"serve", "--tz", "Mars/Olympus"}, "--tz"},
		{[]string{"serve", "--log-level", "loud"}, "--log-level"},
		{[]string{"serve", "--max-packet-bytes", "10"}, "--max-packet-bytes"},
		{[]string{"serve", "--speed", "0"}, "--speed 0"},
		{[]string{"serve", "--alert-grace", "0"}, "--alert-grace 0: give a value above 0"},
		{[]string{"serve", "--history-flush", "0s"}, "--history-flush 0: give a value above 0"},
		{[]string{"serve", "--access-rate", "0"}, "--access-rate 0: give a value above 0"},
		{[]string{"serve", "--access-rate", "-0"}, "--access-rate 0: give a value above 0"},
		{[]string{"serve", "--alert-grace", "-0s"}, "--alert-grace 0: give a value above 0"},
		{[]string{"serve", "--webhook-max-pending", "0"}, "default (10000)"},
		{[]string{"serve", "--demo-stations", "5"}, "--demo-stations needs --demo"},
		{[]string{"serve", "--demo-seed", "5"}, "--demo-seed needs --demo"},
	} {
		args := append(tc.args, "--data", t.TempDir())
		_, err := runCLI(args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}

// TestNewDataFolderSaysSo: a data folder that did not exist is created and
// a warning says the platform starts empty (a mistyped --data); a folder
// that exists gets no such line.
func TestNewDataFolderSaysSo(t *testing.T) {
	fresh := filepath.Join(t.TempDir(), "typo", "data")
	ts := startServer(t, func(o *serveOptions) { o.data = fresh })
	ts.stop(t)
	const warning = `level=WARN msg="the data folder did not exist and was created`
	if !strings.Contains(ts.logs.String(), warning) {
		t.Errorf("a new data folder without a warning:\n%s", ts.logs)
	}
	again := startServer(t, func(o *serveOptions) { o.data = fresh })
	again.stop(t)
	if strings.Contains(again.logs.String(), warning) {
		t.Errorf("an existing data folder called new:\n%s", again.logs)
	}
}

// TestDataFolderHeld: a second server on the same data folder fails within
// a second with a message that says why.
func TestDataFolderHeld(t *testing.T) {
	ts := startServer(t, nil)
	start := time.Now()
	_, err := runCLI("serve", "--data", ts.data, "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--ws", "")
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second serve: %v", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("took %v to fail", d)
	}
}

// retainedStatus subscribes anew to a device's status topic and returns the
// retained message a new subscriber gets.
func retainedStatus(t *testing.T, ts *testServer, station, id string) schemas.Status {
	t.Helper()
	got := make(chan []byte, 1)
	bus := ts.s.mqtt.Bus()
	err := bus.Subscribe(schemas.DeviceTopic(station, id, schemas.ChannelStatus), 1,
		func(_ string, p []byte, retained bool) {
			if retained {
				select {
				case got <- append([]byte(nil), p...):
				default:
				}
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		st, err := schemas.DecodeStatus(p)
		if err != nil {
			t.Fatalf("retained status %s: %v", p, err)
		}
		return st
	case <-time.After(3 * time.Second):
		t.Fatal("no retained status")
	}
	return schemas.Status{}
}

func requireMosquitto(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		// CI installs it (.ci/run); a missing client is a broken setup, not
		// a reason to pass.
		t.Fatalf("mosquitto_pub not installed (apt-get install -y mosquitto-clients): %v", err)
	}
}

// TestDemoStopsWithoutAlerts: stopping serve --demo is the operator's
// doing, not a county going dark. No device or station alert is raised by
// the stop, nor found by the next start.
func TestDemoStopsWithoutAlerts(t *testing.T) {
	data := t.TempDir()
	edit := func(o *serveOptions) {
		o.demo, o.demoStations, o.data = true, 3, data
		o.alerts.grace = time.Millisecond // past the start's grace at once
	}
	online := func(ts *testServer) {
		var devs []controller.DeviceView
		eventually(t, 15*time.Second, "every demo device online", func() bool {
			if ts.api(t, "GET", "/api/v1/devices", nil, &devs) != 200 || len(devs) < 6 {
				return false
			}
			for _, d := range devs {
				if d.Twin == nil || !d.Twin.Online {
					return false
				}
			}
			return true
		})
	}
	ts := startServer(t, edit)
	online(ts)
	ts.stop(t)

	again := startServer(t, edit)
	var alerts []controller.Alert
	if code := again.api(t, "GET", "/api/v1/alerts", nil, &alerts); code != 200 {
		t.Fatalf("alerts: %d", code)
	}
	for _, a := range alerts {
		if a.Rule == controller.RuleOffline || a.Rule == controller.RuleStationDown {
			t.Errorf("after a clean stop of the demo: %s %s %s (%s)", a.Rule, a.Station, a.Device, a.State)
		}
	}
	online(again)
}

// TestRestartResumesSimulatedClock: starting again on the same data with
// the same --start does not turn the clock back to before what the data
// already holds; it resumes from the last report.
func TestRestartResumesSimulatedClock(t *testing.T) {
	data := t.TempDir()
	edit := func(o *serveOptions) {
		o.demo, o.demoStations, o.data = true, 2, data
		o.start, o.speed = "2025-07-22 10:30", 600
	}
	start := time.Date(2025, 7, 22, 10, 30, 0, 0, time.FixedZone("CST", 8*3600))
	ts := startServer(t, edit)
	eventually(t, 15*time.Second, "reports ten simulated minutes after the start", func() bool {
		return ts.s.twin.LastSeen().Sub(start) > 10*time.Minute
	})
	ts.stop(t)
	db, err := devices.OpenDB(filepath.Join(data, "waystation.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	twins, err := devices.NewTwins(db, devices.TwinsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	last := twins.LastSeen()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if last.Sub(start) < 10*time.Minute {
		t.Fatalf("last report kept at %v", last)
	}

	again := startServer(t, edit)
	if now := again.s.clock.Now(); now.Before(last) {
		t.Fatalf("restarted at %v, before the last report %v", now, last)
	}
	resumed := ""
	for line := range strings.Lines(again.logs.String()) {
		if strings.Contains(line, "resuming the simulated clock") {
			resumed = line
		}
	}
	if resumed == "" {
		t.Errorf("the resume is not logged:\n%s", again.logs)
	} else if !strings.Contains(resumed, ` sim="`) {
		t.Errorf("the resume's line gives no simulated time: %s", resumed)
	}
}

// TestRestartResumesScenario: a demo scenario with dated events, started
// again on its data after some of them, resumes (rather than refusing the
// events now in the past) and plays only what is left.
func TestRestartResumesScenario(t *testing.T) {
	data := t.TempDir()
	yaml := filepath.Join(t.TempDir(), "dated.yaml")
	if err := os.WriteFile(yaml, []byte("name: dated\nstart: \"2025-07-22 10:00\"\nevents:\n"+
		"  - at: \"2025-07-22 10:02\"\n    device: ys-001-ac\n    do: fault\n    code: P1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	edit := func(o *serveOptions) {
		o.demo, o.demoStations, o.data = true, 2, data
		o.demoScenario, o.speed = yaml, 600
	}
	ts := startServer(t, edit)
	start := ts.s.clock.Now()
	eventually(t, 15*time.Second, "ten simulated minutes of reports", func() bool {
		return ts.s.twin.LastSeen().Sub(start) > 10*time.Minute
	})
	ts.stop(t)

	again := startServer(t, edit)
	select {
	case err := <-again.done:
		again.cancel = nil
		t.Fatalf("the restart stopped: %v", err)
	case <-time.After(2 * time.Second):
	}
	if !strings.Contains(again.logs.String(), "demo county running") {
		t.Fatalf("the demo did not run again:\n%s", again.logs)
	}
	// The fault the scenario set before the stop, never recovered, is
	// still on: the AC reports it and its alert stays open.
	resumed := again.s.clock.Now()
	eventually(t, 15*time.Second, "the AC reporting after the resume", func() bool {
		tw, ok := again.s.twin.Get("ys-001-ac")
		return ok && tw.StateAt.Sub(resumed) > 5*time.Minute
	})
	var alerts []controller.Alert
	again.api(t, "GET", "/api/v1/alerts?device=ys-001-ac&rule="+controller.RuleACFault, nil, &alerts)
	if len(alerts) != 1 || alerts[0].State != controller.AlertFiring {
		t.Fatalf("the AC's fault after the resume: %+v", alerts)
	}
}

// TestLogLinesCarrySimulatedTime: on a simulated clock every log line also
// gives the simulated time, in the server's zone; on the real one none does.
func TestLogLinesCarrySimulatedTime(t *testing.T) {
	sim := startServer(t, func(o *serveOptions) { o.start = "2025-07-22 10:30" })
	sim.stop(t)
	listening := ""
	for line := range strings.Lines(sim.logs.String()) {
		if strings.Contains(line, `msg="http listening"`) {
			listening = line
		}
	}
	if !strings.Contains(listening, `sim="2025-07-22 10:3`) {
		t.Errorf("a log line on a simulated clock without its time:\n%s", sim.logs)
	}
	real := startServer(t, nil)
	real.stop(t)
	if strings.Contains(real.logs.String(), "sim=") {
		t.Errorf("a log line on the real clock gives a simulated time:\n%s", real.logs)
	}
}
