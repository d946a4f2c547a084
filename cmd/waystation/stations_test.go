package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/devices"
)

func TestStationsAddAndList(t *testing.T) {
	f := newAPIFixture(t)

	out, _, err := runClient(f.args("stations", "add", "--id", "ys-001", "--name", "颍上县城关环卫驿站",
		"--address", "城关镇管仲大道 18 号", "--lat", "32.6291", "--lon", "116.2658", "--org", "县总工会",
		"--hours", "24h")...)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := f.reg.Station("ys-001")
	if err != nil {
		t.Fatalf("not stored: %v", err)
	}
	want := devices.Station{ID: "ys-001", Name: "颍上县城关环卫驿站", Address: "城关镇管仲大道 18 号",
		Lat: 32.6291, Lon: 116.2658, Org: "县总工会", Hours: "24h", Created: stored.Created}
	if !reflect.DeepEqual(stored, want) {
		t.Errorf("stored %+v\nwant %+v", stored, want)
	}
	for _, s := range []string{"ID", "ADDRESS", "ys-001", "颍上县城关环卫驿站", "32.6291", "116.2658", "县总工会",
		stored.Created.In(time.Local).Format(timeLayout)} {
		if !strings.Contains(out, s) {
			t.Errorf("add output lacks %q:\n%s", s, out)
		}
	}

	// Adding it again is refused by the server, with its message and status.
	_, _, err = runClient(f.args("stations", "add", "--id", "ys-001", "--name", "again", "--lat", "32.6",
		"--lon", "116.2", "--hours", "24h")...)
	wantErr := "add station ys-001: station ys-001: already exists (HTTP 409 Conflict)"
	if err == nil || err.Error() != wantErr {
		t.Errorf("second add: %v, want %s", err, wantErr)
	}

	// A station the registry would refuse is refused before any request.
	before := f.requests.Load()
	_, _, err = runClient(f.args("stations", "add", "--id", "ys-002", "--name", "a", "--lat", "91",
		"--lon", "116.2", "--hours", "24h")...)
	if err == nil || !strings.Contains(err.Error(), "latitude 91 outside -90..90") {
		t.Errorf("lat 91: %v", err)
	}
	_, _, err = runClient(f.args("stations", "add", "--id", "ys-002", "--name", "a", "--lat", "32")...)
	if err == nil || !strings.Contains(err.Error(), `required flag(s) "hours", "lon" not set`) {
		t.Errorf("missing flags: %v", err)
	}
	if n := f.requests.Load() - before; n != 0 {
		t.Errorf("%d requests for stations refused locally", n)
	}

	// List, as JSON the API's own answer, and as a table.
	if got := listStationsJSON(t, "--server", f.url, "--token", f.token); !reflect.DeepEqual(got,
		f.reg.Stations()) {
		t.Errorf("list -o json: %+v\nwant %+v", got, f.reg.Stations())
	}
	out, _, err = runClient(f.args("stations", "list")...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || !strings.HasPrefix(lines[1], "ys-001") {
		t.Errorf("list:\n%s", out)
	}
}

func TestStationsListEmpty(t *testing.T) {
	f := newAPIFixture(t)
	out, _, err := runClient(f.args("stations", "list")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "no stations yet") {
		t.Errorf("empty list: %q", out)
	}
	out, _, err = runClient(f.args("stations", "list", "-o", "json")...)
	if err != nil || out != "[]\n" {
		t.Errorf("empty list as JSON: %q, %v", out, err)
	}
}

const importCSV = `id,name,address,lat,lon,org,hours
ys-001,颍上县城关环卫驿站,"城关镇管仲大道 18 号",32.6291,116.2658,县总工会,24h
ys-002,慎城镇骑手驿站,,32.6402,116.2491,美团配送站,06:00-23:00
ys-003,江店孜驿站,,32.5533,116.1812,,22:00-06:00
`

const importYAML = `stations:
  - id: ys-001
    name: 颍上县城关环卫驿站
    address: 城关镇管仲大道 18 号
    lat: 32.6291
    lon: 116.2658
    org: 县总工会
    hours: 24h
  - {id: ys-002, name: 慎城镇骑手驿站, lat: 32.6402, lon: 116.2491, org: 美团配送站, hours: "06:00-23:00"}
  - {id: ys-003, name: 江店孜驿站, lat: 32.5533, lon: 116.1812, hours: "22:00-06:00"}
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStationsImport(t *testing.T) {
	for _, file := range []struct{ name, content string }{
		{"stations.csv", importCSV},
		{"stations.yaml", importYAML},
	} {
		t.Run(file.name, func(t *testing.T) {
			f := newAPIFixture(t)
			path := writeFile(t, file.name, file.content)
			want, err := devices.ParseStationsFile(path)
			if err != nil {
				t.Fatal(err)
			}

			out, _, err := runClient(f.args("stations", "import", path)...)
			if err != nil {
				t.Fatal(err)
			}
			if out != "imported 3 stations from "+path+"\n" {
				t.Errorf("output %q", out)
			}
			got := f.reg.Stations()
			for i := range got {
				got[i].Created = time.Time{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("stored %+v\nwant %+v", got, want)
			}

			// Again: every station exists, so the server refuses the lot.
			_, _, err = runClient(f.args("stations", "import", path)...)
			wantErr := "import " + path + ": nothing was added: station ys-001: already exists " +
				"(HTTP 409 Conflict)"
			if err == nil || err.Error() != wantErr {
				t.Errorf("second import: %v\nwant %s", err, wantErr)
			}
		})
	}
}

func TestStationsImportAllOrNone(t *testing.T) {
	f := newAPIFixture(t)

	// A file with one bad line is refused here, naming the line; nothing is sent.
	bad := writeFile(t, "bad.csv", strings.Replace(importCSV, "32.6402", "91.5", 1))
	_, _, err := runClient(f.args("stations", "import", bad)...)
	want := bad + `:3: lat "91.5" outside -90..90`
	if err == nil || err.Error() != want {
		t.Errorf("bad file: %v\nwant %s", err, want)
	}
	typo := writeFile(t, "typo.yml",
		strings.Replace(importYAML, "    lon: 116.2658", "    long: 116.2658", 1))
	_, _, err = runClient(f.args("stations", "import", typo)...)
	want = typo + `:6: unknown field "long" (want id, name, address, lat, lon, org, hours)`
	if err == nil || err.Error() != want {
		t.Errorf("typo: %v\nwant %s", err, want)
	}
	if n := f.requests.Load(); n != 0 {
		t.Errorf("%d requests for files refused locally", n)
	}

	// A good file that clashes with one station already there: none is added.
	if _, err := f.reg.AddStation(devices.Station{ID: "ys-003", Name: "已有", Lat: 32, Lon: 116,
		Hours: "24h"}); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "stations.csv", importCSV)
	_, _, err = runClient(f.args("stations", "import", path)...)
	if err == nil || !strings.Contains(err.Error(), "nothing was added: station ys-003: already exists") {
		t.Errorf("clash: %v", err)
	}
	if got := f.reg.Stations(); len(got) != 1 {
		t.Errorf("%d stations after a refused import, want the 1 that was there", len(got))
	}
}

func TestStationsImportDryRun(t *testing.T) {
	f := newAPIFixture(t)
	path := writeFile(t, "stations.csv", importCSV)

	// No token and no server needed: nothing is sent.
	out, _, err := runClient("stations", "import", "--dry-run", "--data", t.TempDir(), path)
	if err != nil {
		t.Fatal(err)
	}
	if out != path+": 3 stations, all valid (nothing sent: --dry-run)\n" {
		t.Errorf("output %q", out)
	}
	if n := f.requests.Load(); n != 0 || len(f.reg.Stations()) != 0 {
		t.Errorf("dry run sent %d requests", n)
	}

	_, _, err = runClient("stations", "import", "--dry-run", writeFile(t, "s.json", "[]"))
	if err == nil || !strings.Contains(err.Error(), "want .csv, .yaml or .yml") {
		t.Errorf("unknown extension: %v", err)
	}
}

func TestStationsImportJSON(t *testing.T) {
	f := newAPIFixture(t)
	path := writeFile(t, "stations.csv", importCSV)
	out, _, err := runClient(f.args("stations", "import", path, "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "[\n  {\n    \"id\": \"ys-001\",") || strings.Count(out, `"id"`) != 3 {
		t.Errorf("import -o json:\n%s", out)
	}
}
