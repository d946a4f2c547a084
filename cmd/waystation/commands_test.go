package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/schemas"
	"github.com/waystation/waystation/simulators"
)

// TestACSetAndCommandsLog switches every AC of a station from the CLI,
// waits for the answers, and reads the log back.
func TestACSetAndCommandsLog(t *testing.T) {
	ts := startServer(t, nil)
	runSimDevice(t, ts, "ys-001", "ys-001-ac1", schemas.KindAC, simulators.Break{})
	runSimDevice(t, ts, "ys-001", "ys-001-ac2", schemas.KindAC, simulators.Break{})
	ts.register(t, "ys-001", "ys-001-lock", schemas.KindLock) // never connects
	ts.register(t, "ys-002", "ys-002-ac1", schemas.KindAC)
	for _, id := range []string{"ys-001-ac1", "ys-001-ac2"} {
		eventually(t, 5*time.Second, id+" online", func() bool {
			tw := ts.twinCLI(t, id).Twin
			return tw != nil && tw.Online
		})
	}
	cli := func(args ...string) (string, error) {
		return runCLI(append(args, "--server", ts.url, "--token", ts.token)...)
	}

	out, err := cli("ac", "set", "--station", "ys-001", "--power", "on", "--mode", "cool",
		"--setpoint", "26", "--reason", "pre-cool", "--wait", "10s")
	if err != nil {
		t.Fatalf("ac set: %v\n%s", err, out)
	}
	for _, want := range []string{"ys-001-ac1", "ys-001-ac2", "mode=cool power=true setpoint_c=26",
		"acknowledged", "operator:admin"} {
		if !strings.Contains(out, want) {
			t.Errorf("ac set output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ys-001-lock") {
		t.Errorf("sent ac.set to the lock:\n%s", out)
	}
	for _, id := range []string{"ys-001-ac1", "ys-001-ac2"} {
		eventually(t, 5*time.Second, id+" at 26 °C cooling", func() bool {
			var st schemas.ACState
			tw := ts.twinCLI(t, id).Twin
			return tw != nil && json.Unmarshal(tw.State, &st) == nil && st.Power &&
				st.Mode == "cool" && st.SetpointC == 26
		})
	}

	// One device, without waiting: the answer is pending or already sent.
	out, err = cli("ac", "set", "--station", "ys-001", "--device", "ys-001-ac2", "--fan", "high",
		"--expires", "30s", "-o", "json")
	var sent []controller.CommandRecord
	if err != nil || json.Unmarshal([]byte(out), &sent) != nil || len(sent) != 1 ||
		sent[0].Device != "ys-001-ac2" || sent[0].ExpiresAt.Sub(sent[0].Created) != 30*time.Second {
		t.Fatalf("ac set one device: %v\n%s", err, out)
	}

	// A door terminal that never answers: --wait says so and fails.
	out, err = cli("lock", "unlock", "ys-001-lock", "--seconds", "5", "--wait", "300ms",
		"--expires", "1s")
	if err == nil || !strings.Contains(err.Error(), "lock.unlock") ||
		!strings.Contains(out, "pending") {
		t.Errorf("unanswered unlock: %v\n%s", err, out)
	}
	// It expires on the server's clock and shows so.
	eventually(t, 5*time.Second, "the unlock expired", func() bool {
		out, err := cli("commands", "list", "--device", "ys-001-lock", "--state", "expired",
			"-o", "json")
		var l []controller.CommandRecord
		return err == nil && json.Unmarshal([]byte(out), &l) == nil && len(l) == 1 &&
			l[0].Attempts == 0
	})

	// Refused before anything is sent.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ac", "set", "--station", "ys-001", "--setpoint", "40"}, "setpoint_c"},
		{[]string{"ac", "set", "--station", "ys-001"}, "nothing to set"},
		{[]string{"ac", "set", "--station", "ys-001", "--power", "maybe"}, "--power"},
		{[]string{"ac", "set", "--station", "ys-001", "--device", "ys-002-ac1", "--power", "on"},
			"not an air conditioner of station ys-001"},
		{[]string{"ac", "set", "--station", "ys-009", "--power", "on"}, "not found"},
		{[]string{"lock", "mode", "ys-001-lock", "party"}, "want one of"},
		{[]string{"charger", "slot", "ys-001-charger", "0", "off"}, "slot"},
		{[]string{"lock", "unlock", "ys-001-ac1"}, "for lock devices"},
		{[]string{"commands", "list", "--state", "lost"}, "--state"},
	} {
		if out, err := cli(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error about %q\n%s", c.args, err, c.want, out)
		}
	}

	// The log: newest first, filtered, one by id.
	out, err = cli("commands", "list", "--station", "ys-001", "-o", "json")
	var list []controller.CommandRecord
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 4 {
		t.Fatalf("commands list: %v\n%s", err, out)
	}
	if list[0].Name != schemas.CmdLockUnlock || list[3].Reason != "pre-cool" {
		t.Errorf("order or content: %+v", list)
	}
	out, err = cli("commands", "list", "--state", "acknowledged", "--name", "ac.set")
	if err != nil || strings.Count(out, "ok") < 2 || strings.Contains(out, "lock.unlock") {
		t.Errorf("commands list table: %v\n%s", err, out)
	}
	out, err = cli("commands", "show", list[3].ID)
	if err != nil || !strings.Contains(out, "pre-cool") || !strings.Contains(out, "round trip:") ||
		!strings.Contains(out, "acknowledged") {
		t.Errorf("commands show: %v\n%s", err, out)
	}
	if _, err := cli("commands", "show", "c20990101-000000-000001"); err == nil ||
		!strings.Contains(err.Error(), "no such command") {
		t.Errorf("unknown command: %v", err)
	}
	out, err = cli("devices", "ping", "ys-001-ac1", "--wait", "10s")
	if err != nil || !strings.Contains(out, "device.ping") || !strings.Contains(out, "acknowledged") {
		t.Errorf("devices ping: %v\n%s", err, out)
	}
}
