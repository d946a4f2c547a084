package controller

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/devices"
)

const goodCrews = `# the county's sanitation crews
defaults:
  cool_at_c: 31
  rest_min: 40
stations:
  ys-002: {cool_to_c: 27, off: false}
crews:
  - id: sanitation-a
    name: Sanitation crew A
    time_zone: Asia/Shanghai
    stations: [ys-001, ys-002]
    week:
      weekdays: ["05:30", "11:30", "14:00", "17:30"]
      sat: ["05:30"]
    seasons:
      - name: winter
        from: "11-15"
        to: "03-15"
        week: {daily: ["06:30", "17:00"]}
    exceptions:
      - {date: "10-26", note: sanitation workers' day, shifts: []}
      - {date: "2025-07-22", shifts: ["23:50"]}
  - id: riders
    time_zone: Europe/Paris
    stations: [ys-002]
    week: {fri-mon: ["00:01"]}
`

func TestParseTimetable(t *testing.T) {
	known := func(id string) bool { return id == "ys-001" || id == "ys-002" }
	tt, err := ParseTimetable("crews.yaml", []byte(goodCrews), known)
	if err != nil {
		t.Fatal(err)
	}
	if len(tt.Crews) != 2 || tt.Defaults == nil || *tt.Defaults.CoolAtC != 31 ||
		*tt.Defaults.RestMin != 40 || *tt.Stations["ys-002"].CoolToC != 27 {
		t.Fatalf("timetable %+v", tt)
	}
	a := tt.Crews[0]
	if a.ID != "sanitation-a" || a.TimeZone != "Asia/Shanghai" ||
		!reflect.DeepEqual(a.Stations, []string{"ys-001", "ys-002"}) ||
		!reflect.DeepEqual(a.Week["wed"], []string{"05:30", "11:30", "14:00", "17:30"}) ||
		a.Week["sun"] != nil || len(a.Week["sat"]) != 1 {
		t.Fatalf("crew a %+v", a)
	}
	if got := tt.Crews[1].Week; len(got) != 4 || got["sat"] == nil || got["tue"] != nil {
		t.Fatalf("fri-mon gives %v", got)
	}

	for _, tc := range []struct {
		date string
		want []string
		from string
	}{
		{"2025-07-16", []string{"05:30", "11:30", "14:00", "17:30"}, "week"}, // Wednesday
		{"2025-07-19", []string{"05:30"}, "week"},                            // Saturday
		{"2025-07-20", nil, "week"},                                          // Sunday
		{"2025-07-22", []string{"23:50"}, "exception 2025-07-22"},
		{"2025-10-26", []string{}, "exception 10-26 (sanitation workers' day)"},
		{"2025-12-31", []string{"06:30", "17:00"}, "season winter"}, // the season wraps the new year
		{"2026-03-15", []string{"06:30", "17:00"}, "season winter"},
		{"2026-03-16", []string{"05:30", "11:30", "14:00", "17:30"}, "week"},
	} {
		d, _ := time.Parse(time.DateOnly, tc.date)
		got, from := a.ShiftsOn(d.Year(), d.Month(), d.Day())
		if !reflect.DeepEqual(got, tc.want) || from != tc.from {
			t.Errorf("%s: %v from %q, want %v from %q", tc.date, got, from, tc.want, tc.from)
		}
	}
}

func TestParseTimetableRejects(t *testing.T) {
	known := func(id string) bool { return id == "ys-001" }
	tests := []struct {
		name, file, want string
	}{
		{"bad time", `crews:
  - id: a
    time_zone: Asia/Shanghai
    stations: [ys-001]
    week:
      mon: ["05:30", "25:00"]
`, `f.yaml:6: mon: "25:00": want a time "HH:MM" (00:00 to 23:59)`},
		{"unknown station", `crews:
  - id: a
    time_zone: Asia/Shanghai
    stations:
      - ys-001
      - ys-404
    week: {daily: ["05:30"]}
`, `f.yaml:6: station "ys-404" is not registered`},
		{"bad zone", `crews:
  - id: a
    time_zone: Mars/Olympus
    stations: [ys-001]
    week: {daily: ["05:30"]}
`, `f.yaml:3: time_zone "Mars/Olympus": want an IANA zone name such as Asia/Shanghai`},
		{"day twice", `crews:
  - id: a
    time_zone: Asia/Shanghai
    stations: [ys-001]
    week:
      weekdays: ["05:30"]
      fri: ["06:00"]
`, `f.yaml:7: week: fri already has times on line 6`},
		{"typo", `crews:
  - id: a
    timezone: Asia/Shanghai
    stations: [ys-001]
    week: {daily: ["05:30"]}
`, "f.yaml:2: crew has no \"time_zone\"\nf.yaml:3: crew: unknown field \"timezone\" " +
			"(want id, name, time_zone, stations, week, seasons, exceptions)"},
		{"bad exception", `crews:
  - id: a
    time_zone: Asia/Shanghai
    stations: [ys-001]
    week: {daily: ["05:30"]}
    exceptions:
      - {date: "2025-02-30", shifts: []}
`, `f.yaml:7: exception date "2025-02-30": want "YYYY-MM-DD", or "MM-DD" for every year`},
		{"duplicate crew", `crews:
  - {id: a, time_zone: UTC, stations: [ys-001], week: {daily: ["05:30"]}}
  - {id: a, time_zone: UTC, stations: [ys-001], week: {daily: ["06:30"]}}
`, `f.yaml:3: crew id "a" is already on line 2`},
		{"policy", `defaults:
  cool_to_c: 12
crews: []
`, `f.yaml:2: cool_to_c 12: want a setpoint of 16 to 32 °C`},
		{"yaml", "crews: [\n", `f.yaml:1: did not find expected node content`},
		{"empty", "# nothing\n", `f.yaml: no crews in the file`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tt, err := ParseTimetable("f.yaml", []byte(tc.file), known)
			if err == nil {
				t.Fatalf("accepted: %+v", tt)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
			if !errors.Is(err, devices.ErrInvalid) {
				t.Errorf("%v is not ErrInvalid", err)
			}
		})
	}
}

// TestCrewsStore: an import is kept across a reopen, replaces crews of the
// same id, and merges policy changes.
func TestCrewsStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	db, err := devices.OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCrews(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	tt, err := ParseTimetable("", []byte(goodCrews), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Import(tt); err != nil {
		t.Fatal(err)
	}
	again, err := ParseTimetable("", []byte(`stations: {ys-002: {rest_min: 10}}
crews:
  - {id: riders, time_zone: UTC, stations: [ys-003], week: {daily: ["08:00"]}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Import(again); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = devices.OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if c, err = NewCrews(db, nil); err != nil {
		t.Fatal(err)
	}
	list := c.List()
	if len(list) != 2 || list[1].ID != "sanitation-a" || list[0].ID != "riders" ||
		list[0].TimeZone != "UTC" || list[0].Stations[0] != "ys-003" {
		t.Fatalf("crews after reopen: %+v", list)
	}
	p := c.Policy("ys-002")
	want := ClimatePolicy{CoolAtC: 31, CoolToC: 27, HeatAtC: 5, HeatToC: 18, RestMin: 10}
	if p != want {
		t.Fatalf("policy of ys-002 %+v, want %+v", p, want)
	}
	if p := c.Policy("ys-009"); p.CoolAtC != 31 || p.RestMin != 40 || p.CoolToC != 26 {
		t.Fatalf("default policy %+v", p)
	}
	if _, err := c.Delete("riders"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete("riders"); !errors.Is(err, ErrNoCrew) {
		t.Fatalf("second delete: %v", err)
	}
	if !strings.Contains(weekdays[0], "sun") {
		t.Fatal("weekdays start on Sunday, as time.Weekday")
	}
}
