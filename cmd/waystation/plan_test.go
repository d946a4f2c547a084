package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/schemas"
)

// TestCrewsAndPlanCLI imports crews through the CLI as a scheduler, lists
// them, refuses a bad file whole with its line, refuses a monitor, and
// reads the plan of a station whose AC reports a hot day.
func TestCrewsAndPlanCLI(t *testing.T) {
	t.Setenv(envServer, "")
	t.Setenv(envToken, "")
	ts := startServer(t, nil)
	secret := ts.register(t, "ys-001", "ys-001-ac", schemas.KindAC)
	ts.register(t, "ys-002", "ys-002-ac", schemas.KindAC)
	var sched, mon controller.NewOperator
	if code := ts.api(t, "POST", "/api/v1/operators", map[string]any{"name": "planner-desk",
		"role": "scheduler", "orgs": []string{"*"}}, &sched); code != 201 {
		t.Fatalf("add scheduler: %d", code)
	}
	if code := ts.api(t, "POST", "/api/v1/operators", map[string]any{"name": "night",
		"role": "monitor", "orgs": []string{"*"}}, &mon); code != 201 {
		t.Fatalf("add monitor: %d", code)
	}
	as := func(token string, args ...string) []string {
		return append(args, "--server", ts.url, "--token", token)
	}

	dir := t.TempDir()
	good := filepath.Join(dir, "crews.yaml")
	os.WriteFile(good, []byte(`crews:
  - id: sanitation
    time_zone: Asia/Shanghai
    stations: [ys-001, ys-002]
    week: {daily: ["05:30", "11:30", "14:00", "17:30"]}
`), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`crews:
  - id: riders
    time_zone: Asia/Shanghai
    stations: [ys-001, ys-404]
    week: {daily: ["05:30"]}
`), 0o600)

	if _, _, err := runClient(as(mon.Token, "crews", "import", good)...); err == nil ||
		!strings.Contains(err.Error(), "HTTP 403") {
		t.Fatalf("a monitor imported crews: %v", err)
	}
	// A scheduler of one partner may not plan stations outside its scope.
	var partner controller.NewOperator
	if code := ts.api(t, "POST", "/api/v1/operators", map[string]any{"name": "partner-desk",
		"role": "scheduler", "orgs": []string{"org-x"}}, &partner); code != 201 {
		t.Fatalf("add partner scheduler: %d", code)
	}
	if _, _, err := runClient(as(partner.Token, "crews", "import", good)...); err == nil ||
		!strings.Contains(err.Error(), "HTTP 403") || !strings.Contains(err.Error(), "ys-001") {
		t.Fatalf("a partner's scheduler imported crews of other stations: %v", err)
	}
	out, _, err := runClient(as(sched.Token, "crews", "import", good)...)
	if err != nil || !strings.Contains(out, "imported 1 crews") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	_, _, err = runClient(as(sched.Token, "crews", "import", bad)...)
	if err == nil || !strings.Contains(err.Error(), bad+`:4: station "ys-404" is not registered`) ||
		!strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("bad file: %v", err)
	}
	out, _, err = runClient(as(mon.Token, "crews", "list", "-o", "json")...)
	var list controller.CrewList
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list.Crews) != 1 ||
		list.Crews[0].ID != "sanitation" || list.Policies.Defaults.CoolAtC != 30 {
		t.Fatalf("crews list: %v\n%s", err, out)
	}
	out, _, err = runClient(as(mon.Token, "crews", "list")...)
	if err != nil || !strings.Contains(out, "mon-sun 05:30 11:30 14:00 17:30") {
		t.Fatalf("crews list table: %v\n%s", err, out)
	}

	// ys-001's AC reports 35.2 °C outside: its runs cool; ys-002's has
	// never reported: no weather, and a warning.
	d, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-ac", secret, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}
	d.publish(t, schemas.ChannelTelemetry, false, acTelemetry(1, 31))
	eventually(t, 5*time.Second, "the twin has the telemetry", func() bool {
		v := ts.twinCLI(t, "ys-001-ac")
		return v.Twin != nil && v.Twin.Seq == 1
	})
	tomorrow := time.Now().In(ts.s.loc).AddDate(0, 0, 1).Format(time.DateOnly)
	out, _, err = runClient(as(mon.Token, "plan", "--date", tomorrow, "-o", "json")...)
	var pl controller.Plan
	if err != nil || json.Unmarshal([]byte(out), &pl) != nil {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	cool := 0
	for _, r := range pl.Runs {
		if r.Station == "ys-001" && r.Action == controller.ActionCool && r.TargetC == 26 &&
			r.LeadMin == 30 && r.Shift.Sub(r.Start) == 30*time.Minute && r.Why != "" {
			cool++
		}
	}
	// Moved along a day's curve from now, the forecast of 35.2 °C stays at
	// or above 30 °C for the shifts from 11:30 to 17:30 (05:30 depends on
	// the hour the test runs).
	if len(pl.Runs) != 8 || cool < 3 {
		t.Fatalf("plan of %s: %d runs, %d cooling at ys-001\n%s", tomorrow, len(pl.Runs), cool, out)
	}
	out, _, err = runClient(as(mon.Token, "plan", "--date", tomorrow, "--station", "ys-001")...)
	if err != nil || !strings.Contains(out, "05:30") || !strings.Contains(out, "cool") ||
		strings.Contains(out, "ys-002") {
		t.Fatalf("plan table: %v\n%s", err, out)
	}
	if _, _, err := runClient(as(mon.Token, "plan", "--date", "22-07-2025")...); err == nil {
		t.Fatal("a bad date was accepted")
	}
}
