package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/schemas"
	"github.com/waystation/waystation/simulators"
)

// TestServeDemoOnSimulatedClock: serve --demo --speed --start runs the
// controller and the demo devices on one simulated clock, so the twins are
// stamped in simulated time and the devices' clocks agree with the
// platform's.
func TestServeDemoOnSimulatedClock(t *testing.T) {
	start := time.Date(2025, 7, 20, 5, 0, 0, 0, time.FixedZone("CST", 8*3600))
	ts := startServer(t, func(o *serveOptions) {
		o.demo, o.demoStations, o.speed, o.start = true, 2, 600, "2025-07-20 05:00"
	})
	var devs []controller.DeviceView
	eventually(t, 10*time.Second, "every demo device reported", func() bool {
		if ts.api(t, "GET", "/api/v1/devices", nil, &devs) != 200 || len(devs) < 4 {
			return false
		}
		for _, d := range devs {
			if d.Twin == nil || d.Twin.State == nil {
				return false
			}
		}
		return true
	})
	for _, d := range devs {
		seen := d.Twin.LastSeen
		if seen.Before(start) || seen.After(start.Add(24*time.Hour)) {
			t.Errorf("%s: last seen %v, want simulated time just after %v", d.ID, seen, start)
		}
		if d.Created.Before(start) || d.Created.After(start.Add(24*time.Hour)) {
			t.Errorf("%s: registered at %v, want simulated time", d.ID, d.Created)
		}
		if skew := time.Duration(d.Twin.ClockSkewMS) * time.Millisecond; skew.Abs() > 2*time.Minute {
			t.Errorf("%s: clock skew %v between device and platform on one clock", d.ID, skew)
		}
	}
}

func TestServeRefusesBadClockFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--speed", "-1"}, "--speed"},
		{[]string{"serve", "--speed", "1e9"}, "--speed"},
		{[]string{"serve", "--start", "soon"}, "--start"},
	} {
		args := append(tc.args, "--data", t.TempDir(), "--mqtt", "127.0.0.1:0", "--http",
			"127.0.0.1:0", "--ws", "")
		_, err := runCLI(args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}

// simulateCLI runs `waystation` with args and returns what it printed.
func simulateCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCLI(args...)
}

// TestSimulateProvisionThenRun: --provision registers the county through
// the API, writes the secrets to a private registry file and runs the
// devices; the file alone runs them again; provisioning again reuses it.
func TestSimulateProvisionThenRun(t *testing.T) {
	ts := startServer(t, nil)
	reg := filepath.Join(t.TempDir(), "county.yaml")
	broker := "tcp://" + ts.mqtt
	out, err := simulateCLI(t, "simulate", "--provision", "--stations", "3", "--registry", reg,
		"--broker", broker, "--server", ts.url, "--token", ts.token, "--speed", "600",
		"--duration", "2s", "--progress", "100ms")
	if err != nil {
		t.Fatalf("simulate --provision: %v\n%s", err, out)
	}
	for _, want := range []string{"stations: 3 registered", "devices: 9 registered",
		"all 9 devices connected", "summary", "connected at some point  9"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	fi, err := os.Stat(reg)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("registry file %v, mode %v: want 0600", err, fi.Mode())
	}
	specs, err := simulators.ReadRegistry(reg)
	if err != nil || len(specs) != 9 {
		t.Fatalf("registry: %d devices, %v", len(specs), err)
	}
	for _, s := range specs {
		if s.Secret == "" {
			t.Errorf("%s without a secret", s.Device)
		}
		if v := ts.twinCLI(t, s.Device); v.Twin == nil || v.Twin.LastSeen.IsZero() {
			t.Errorf("%s never reached the server", s.Device)
		}
	}

	out, err = simulateCLI(t, "simulate", "--registry", reg, "--broker", broker,
		"--duration", "1s", "--progress", "100ms", "-o", "json")
	if err != nil {
		t.Fatalf("simulate --registry: %v\n%s", err, out)
	}
	var sum simulateSummary
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, out)
	}
	if sum.Devices != 9 || sum.EverConnected != 9 || sum.Failures != 0 || sum.Sent == 0 {
		t.Errorf("summary %+v", sum)
	}

	out, err = simulateCLI(t, "simulate", "--provision", "--stations", "3", "--registry", reg,
		"--broker", broker, "--server", ts.url, "--token", ts.token, "--duration", "300ms")
	if err != nil || !strings.Contains(out, "0 registered, 9 known from") {
		t.Errorf("provisioning again: %v\n%s", err, out)
	}
}

// TestSimulateShowsFailures: devices the broker refuses show in the
// progress and the summary.
func TestSimulateShowsFailures(t *testing.T) {
	ts := startServer(t, nil)
	out, err := simulateCLI(t, "simulate", "--stations", "2", "--broker", "tcp://"+ts.mqtt,
		"--duration", "1500ms", "--progress", "300ms")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !regexp.MustCompile(`connecting: 0 of 7 connected, [1-7] failing \(\d+ failed attempts\)`).
		MatchString(out) || !strings.Contains(out, "connected at some point  0") {
		t.Errorf("output:\n%s", out)
	}
}

func TestSimulateRefusesBadInput(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("events:\n  - at: '+1m'\n    device: ys-001-ac\n"+
		"    do: explode\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"simulate"}, "--stations N or --registry FILE"},
		{[]string{"simulate", "--stations", "2", "--registry", "x.yaml"}, "not both"},
		{[]string{"simulate", "--provision", "--stations", "2"}, "--registry FILE"},
		{[]string{"simulate", "--stations", "2", "--speed", "0"}, "--speed"},
		{[]string{"simulate", "--stations", "2", "--scenario", bad}, bad + ":4: do \"explode\""},
		{[]string{"simulate", "--stations", "2", "--scenario", "bad-night"}, "no device ys-003-ac"},
		{[]string{"simulate", "--registry", bad}, "unknown key"},
		{[]string{"simulate", "--stations", "2", "--start", "noon"}, "--start"},
		{[]string{"simulate", "--stations", "2", "--broker", "http://x"}, "scheme"},
	} {
		out, err := simulateCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %q\n%s", tc.args, err, tc.want, out)
		}
	}
}

// TestSimulateScenarioOverTheWire: a fleet plays a scenario, printing each
// action as it happens, and the server sees its effects.
func TestSimulateScenarioOverTheWire(t *testing.T) {
	ts := startServer(t, nil)
	reg := filepath.Join(t.TempDir(), "county.yaml")
	sc := filepath.Join(t.TempDir(), "night.yaml")
	if err := os.WriteFile(sc, []byte(`start: "2025-07-21 01:00"
events:
  - {at: "01:10", device: ys-002-aed, do: cabinet_open}
  - {at: "01:20", device: ys-001-ac, do: fault, code: E4}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := simulateCLI(t, "simulate", "--provision", "--stations", "2", "--registry", reg,
		"--broker", "tcp://"+ts.mqtt, "--server", ts.url, "--token", ts.token, "--speed", "300",
		"--scenario", sc, "--duration", "5s", "--progress", "200ms")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"2025-07-21 01:10:00  scenario line 3: cabinet_open on ys-002-aed",
		"2025-07-21 01:20:00  scenario line 4: fault on ys-001-ac"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var aed schemas.AEDState
	v := ts.twinCLI(t, "ys-002-aed")
	if err := json.Unmarshal(v.Twin.State, &aed); err != nil || !aed.CabinetOpen {
		t.Errorf("AED twin %s: want the cabinet open", v.Twin.State)
	}
}

// TestSimulateDevice impersonates one registered device, fed commands on
// stdin: it shows what it sends and receives and acts on each line.
func TestSimulateDevice(t *testing.T) {
	ts := startServer(t, nil)
	secret := ts.register(t, "ys-001", "ys-001-ac", schemas.KindAC)

	in, feed := io.Pipe()
	out := &syncBuffer{}
	cmd := newRootCmd()
	cmd.SetIn(in)
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs([]string{"simulate", "device", "--kind", "ac", "--station", "ys-001",
		"--id", "ys-001-ac", "--secret", secret, "--broker", "tcp://" + ts.mqtt,
		"--interval", "1m", "--log-level", "warn"})
	done := make(chan error, 1)
	stopped := make(chan struct{})
	go func() {
		done <- cmd.ExecuteContext(context.Background())
		close(stopped)
	}()
	t.Cleanup(func() {
		feed.Close()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			t.Error("simulate device did not stop")
		}
	})
	say := func(line string) {
		t.Helper()
		if _, err := io.WriteString(feed, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	shows := func(what string, re string) {
		t.Helper()
		eventually(t, 5*time.Second, what, func() bool {
			return regexp.MustCompile(re).MatchString(out.String())
		})
	}

	shows("the online status", `out status +\{.*"online":true`)
	shows("the first telemetry", `out telemetry +\{.*"room_c"`)
	say("fault E4")
	shows("the fault event", `out event +\{.*"type":"fault_raised".*"code":"E4"`)

	// A command from the platform, and its answer.
	c := schemas.Command{ID: "c-1", Name: schemas.CmdACSet, ExpiresAt: time.Now().Add(time.Minute).
		UnixMilli(), Args: map[string]any{"setpoint_c": 27}}
	payload, _ := json.Marshal(c)
	if err := ts.s.mqtt.Bus().Publish(schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelCmd),
		1, false, payload); err != nil {
		t.Fatal(err)
	}
	shows("the command received", `in  cmd +\{"id":"c-1"`)
	shows("the answer", `out cmd/result +\{.*"id":"c-1","ok":true`)

	say("frobnicate")
	shows("a refusal", `error: unknown command "frobnicate"`)
	say("jam")
	shows("a kind's refusal", `error: Jam on ac ys-001-ac: not supported`)
	say("status")
	shows("the status", `online, conn [0-9a-f]+; \d+ connects`)
	say("quit")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("simulate device: %v\n%s", err, out)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("quit did not stop it")
	}
	shows("the offline status", `out status +\{.*"online":false`)
}
