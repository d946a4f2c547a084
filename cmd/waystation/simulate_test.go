package main

import (
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/controller"
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
