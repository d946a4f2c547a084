package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/waystation/waystation/broker"
)

// envLoadgenServe, set by a test, makes the test binary run the waystation
// command line it was started with instead of the tests, so loadgen can
// start it as its server (--server-bin) without a binary being built.
const envLoadgenServe = "WAYSTATION_TEST_LOADGEN_SERVE"

func init() {
	if os.Getenv(envLoadgenServe) == "" || len(os.Args) < 2 || os.Args[1] != "serve" {
		return
	}
	cmd := newRootCmd()
	cmd.SetArgs(os.Args[1:])
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "waystation:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// TestLoadgenEndToEnd runs every suite of `waystation loadgen`, small, on
// Mosquitto and on a real server process: every figure is measured on
// both, QoS 1 loses nothing, and every fleet report is handled.
func TestLoadgenEndToEnd(t *testing.T) {
	t.Setenv(envLoadgenServe, "1")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCLI("loadgen", "--server-bin", exe, "--dir", t.TempDir(),
		"--suites", "ingest,latency,fleet", "--qos", "1", "--devices", "20", "--duration", "1s",
		"--latency-rate", "200", "--fleet-devices", "40", "--fleet-interval", "1s",
		"--fleet-hold", "2500ms", "-o", "json")
	if err != nil {
		t.Fatalf("loadgen: %v\n%s", err, out)
	}
	var rows []benchRow
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &rows); err != nil {
		t.Fatalf("%v in\n%s", err, out)
	}
	suites := map[string]int{}
	for _, r := range rows {
		suites[r.Suite]++
		// Mosquitto may use less CPU than /proc counts (10 ms) in so
		// small a fleet.
		cpuRow := strings.HasPrefix(r.Measure, "CPU")
		if r.Waystation <= 0 || r.Mosquitto < 0 || (r.Mosquitto == 0 && !cpuRow) ||
			(r.Ratio <= 0 && !cpuRow) {
			t.Errorf("%s %s: waystation %v, mosquitto %v, ratio %v", r.Suite, r.Measure,
				r.Waystation, r.Mosquitto, r.Ratio)
		}
		if r.Suite == "ingest" && !strings.HasPrefix(r.Note, "lost 0 of ") {
			t.Errorf("QoS 1 lost messages: %s", r.Note)
		}
		if m := regexp.MustCompile(`handled (\d+) of (\d+) sent`).FindStringSubmatch(r.Note); m != nil &&
			(m[1] != m[2] || m[1] == "0") {
			t.Errorf("fleet: %s", r.Note)
		}
	}
	if suites["ingest"] != 1 || suites["latency"] != 3 || suites["fleet"] != 3 {
		t.Errorf("rows by suite %v, want ingest 1, latency 3, fleet 3\n%s", suites, out)
	}
}

func TestLoadgenRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--suites", "everything"}, "--suites"},
		{[]string{"--targets", "emqx"}, "--targets"},
		{[]string{"--qos", "2"}, "--qos"},
		{[]string{"--devices", "0"}, "--devices"},
		{[]string{"--fleet-devices", "50000"}, "--fleet-devices"},
		{[]string{"--duration", "1h"}, "--duration"},
		{[]string{"--fleet-hold", "5s"}, "--fleet-hold"},
		{[]string{"--profile"}, "--profile"},
		{[]string{"--mosquitto", "/nonexistent/mosquitto"}, "--mosquitto"},
	} {
		_, err := runCLI(append([]string{"loadgen"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}

func TestServeRefusesBadLimitFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-msgs-per-second", "-1"}, "--max-msgs-per-second"},
		{[]string{"--msg-burst", "-5"}, "--msg-burst"},
		{[]string{"--pprof", "0.0.0.0:6060"}, "--pprof"},
		{[]string{"--pprof", "6060"}, "--pprof"},
	} {
		args := append([]string{"serve", "--data", t.TempDir(), "--mqtt", "127.0.0.1:0",
			"--http", "127.0.0.1:0", "--ws", ""}, tc.args...)
		_, err := runCLI(args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}

// The rate limit counts publishes a second of the controller's clock: on
// a simulated clock the demo's devices report that much faster.
func TestLimitFlagsScaleWithSpeed(t *testing.T) {
	for _, tc := range []struct {
		rate      float64
		burst     int
		speed     float64
		wantRate  float64
		wantBurst int
	}{
		{50, 500, 1, 50, 500},
		{50, 500, 60, 3000, 30000},
		{0, 500, 1, -1, 500}, // no limit
	} {
		var o broker.Options
		f := limitFlags{msgsPerSecond: tc.rate, burst: tc.burst}
		f.apply(&o, tc.speed)
		if o.MaxMsgsPerSecond != tc.wantRate || o.MsgBurst != tc.wantBurst {
			t.Errorf("%+v at speed %g: rate %g burst %d, want %g and %d", f, tc.speed,
				o.MaxMsgsPerSecond, o.MsgBurst, tc.wantRate, tc.wantBurst)
		}
	}
}
