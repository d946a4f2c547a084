package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/schemas"
	"github.com/waystation/waystation/simulators"
	"github.com/waystation/waystation/simulators/probe"
)

// runDevice registers and runs a simulated device against the server, on
// a clock at twice the wall clock, until the test ends.
func runSimDevice(t *testing.T, ts *testServer, station, id string, kind schemas.Kind,
	brk simulators.Break) *simulators.Device {
	t.Helper()
	secret := ts.register(t, station, id, kind)
	d := simulators.NewDevice(simulators.DeviceSpec{Station: station, Device: id, Kind: kind,
		Secret: secret, Interval: time.Second},
		simulators.DeviceOptions{Broker: "tcp://" + ts.mqtt, Break: brk,
			Clock: simulators.NewClock(time.Time{}, 2)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("device: %v", err)
		}
	})
	eventually(t, 5*time.Second, id+" connected", d.Connected)
	return d
}

// TestProbeCommand: serve gives the controller a login whose secret it
// keeps private in the data folder; the probe finds it there, cuts the
// device's power when it asks, and passes a good device.
func TestProbeCommand(t *testing.T) {
	ts := startServer(t, nil)
	fi, err := os.Stat(filepath.Join(ts.data, controllerSecretFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("controller secret file: %v, mode %v; want 0600", err, fi.Mode())
	}
	d := runSimDevice(t, ts, "ys-001", "ys-001-ac", schemas.KindAC, simulators.Break{})

	out := &syncBuffer{}
	cmd := newRootCmd()
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs([]string{"probe", "--device", "ys-001-ac", "--broker", "tcp://" + ts.mqtt,
		"--data", ts.data, "--duration", "2s", "--speed", "2", "--answer-within", "2s",
		"--power-cycle", "--will-within", "2s", "--back-within", "5s"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(context.Background()) }()
	eventually(t, 20*time.Second, "the probe asking for a power cut", func() bool {
		return strings.Contains(out.String(), ">>> cut the power of ys-001-ac now")
	})
	if err := d.PowerCut(500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("probe: %v\n%s", err, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("probe did not finish\n%s", out)
	}
	for _, want := range []string{"PASS  last will", "PASS  repeated command",
		"PASS  expired command", "PASS: every check passed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestProbeCommandFailsABrokenDevice: a device that carries out expired
// commands fails, the report in JSON names the check, and the command
// exits with an error.
func TestProbeCommandFailsABrokenDevice(t *testing.T) {
	ts := startServer(t, nil)
	runSimDevice(t, ts, "ys-002", "ys-002-lock", schemas.KindLock,
		simulators.Break{ExpiredCommands: true})
	secret, err := os.ReadFile(filepath.Join(ts.data, controllerSecretFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(envControllerSecret, strings.TrimSpace(string(secret)))
	stdout, stderr, err := runClient("probe", "--device", "ys-002-lock", "--broker",
		"tcp://"+ts.mqtt, "--data", t.TempDir(), "--duration", "2s", "--speed", "2",
		"--answer-within", "2s", "-o", "json")
	if err == nil || !strings.Contains(err.Error(), "checks failed") {
		t.Fatalf("probe of a broken device: %v\n%s\n%s", err, stdout, stderr)
	}
	var rep probe.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout)
	}
	ch, _ := rep.Check(probe.CheckExpired)
	if rep.Passed || ch.Result != probe.Fail || rep.Station != "ys-002" {
		t.Errorf("report %+v", rep)
	}
}

func TestProbeCommandRefuses(t *testing.T) {
	ts := startServer(t, nil)
	_, _, err := runClient("probe", "--device", "ys-001-ac", "--broker", "tcp://"+ts.mqtt,
		"--secret", "wrong", "--duration", "1s")
	if err == nil || !strings.Contains(err.Error(), "waystation.controller") {
		t.Errorf("a wrong secret: %v", err)
	}
	_, _, err = runClient("probe", "--device", "ys-001-ac", "--data", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no controller secret") {
		t.Errorf("no secret anywhere: %v", err)
	}
	// The controller's login can never be a device's.
	if code := ts.api(t, "POST", "/api/v1/devices", map[string]any{"id": controllerUser,
		"station": "ys-001", "kind": "ac"}, nil); code < 400 {
		t.Errorf("registering a device named %s: HTTP %d", controllerUser, code)
	}
}
