package devices

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// wantStations are the stations every good file in testdata holds.
var wantStations = []Station{
	{ID: "ys-001", Name: "颍上县城关环卫驿站", Address: "城关镇管仲大道 18 号", Lat: 32.6291, Lon: 116.2658,
		Org: "县总工会", Hours: "24h"},
	{ID: "ys-002", Name: "慎城镇骑手驿站", Address: "慎城镇迎宾路与 105 国道交口", Lat: 32.6402, Lon: 116.2491,
		Org: "美团配送站", Hours: "06:00-23:00"},
	{ID: "ys-003", Name: "江店孜驿站", Lat: 32.5533, Lon: 116.1812, Hours: "22:00-06:00"},
}

func TestParseStationsFile(t *testing.T) {
	defer goleak.VerifyNone(t)

	for _, name := range []string{"stations.csv", "stations.yaml", "stations-wrapped.yml"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			got, err := ParseStationsFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, wantStations) {
				t.Errorf("got %+v\nwant %+v", got, wantStations)
			}

			// The same content without a format is recognised.
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err = ParseStations(f, "")
			if err != nil {
				t.Fatalf("guessing the format: %v", err)
			}
			if !reflect.DeepEqual(got, wantStations) {
				t.Errorf("guessing the format: got %+v", got)
			}
		})
	}
}

func TestParseStationsFileRejects(t *testing.T) {
	tests := []struct {
		file string
		want string // the whole message
	}{
		{"bad-lat.csv", `testdata/bad-lat.csv:7: lat "91.5" outside -90..90`},
		{"typo.yaml", `testdata/typo.yaml:14: unknown field "lattitude" ` +
			`(want id, name, address, lat, lon, org, hours)`},
		{"duplicate.csv", `testdata/duplicate.csv:4: station id "ys-001" is already on line 2`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseStationsFile(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatalf("accepted: %+v", got)
			}
			if got != nil {
				t.Errorf("a rejected file still gave stations: %+v", got)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			ie, ok := errors.AsType[*ImportError](err)
			if !ok || ie.File != filepath.Join("testdata", tt.file) || len(ie.Problems) != 1 {
				t.Errorf("error %#v: want an *ImportError naming the file with one problem", err)
			}
		})
	}

	_, err := ParseStationsFile("testdata/stations.txt")
	if err == nil || !strings.Contains(err.Error(), "want .csv, .yaml or .yml") {
		t.Errorf("unknown extension: %v", err)
	}
	_, err = ParseStationsFile("testdata/missing.csv")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist", err)
	}
}

func TestParseStationsGood(t *testing.T) {
	one := []Station{{ID: "ys-001", Name: "城关驿站", Lat: 32.6, Lon: 116.2, Hours: "24h"}}
	tests := []struct {
		name, format, in string
		want             []Station
	}{
		{"csv columns in any order", "csv", "hours,lon,lat,name,id\n24h,116.2,32.6,城关驿站,ys-001\n", one},
		{"csv header in capitals, spaces", "csv",
			"ID, Name ,LAT,Lon,Hours\nys-001, 城关驿站 ,32.6,116.2,24h\n", one},
		{"csv byte order mark and CRLF", "",
			"\uFEFFid,name,lat,lon,hours\r\nys-001,城关驿站,32.6,116.2,24h\r\n", one},
		{"csv blank rows", "csv", "id,name,lat,lon,hours\n,,,,\nys-001,城关驿站,32.6,116.2,24h\n , ,,,\n", one},
		{"csv quoted comma", "csv",
			"id,name,lat,lon,hours,address\nys-001,城关驿站,32.6,116.2,24h,\"1, 管仲大道\"\n",
			[]Station{{ID: "ys-001", Name: "城关驿站", Address: "1, 管仲大道", Lat: 32.6, Lon: 116.2,
				Hours: "24h"}}},
		{"yaml flow list", "", `[{id: ys-001, name: 城关驿站, lat: 32.6, lon: 116.2, hours: 24h}]`, one},
		{"yaml flow mapping", "",
			"{stations: [{id: ys-001, name: 城关驿站, lat: 32.6, lon: 116.2, hours: 24h}]}", one},
		{"yaml document marker", "",
			"---\n- id: ys-001\n  name: 城关驿站\n  lat: 32.6\n  lon: 116.2\n  hours: 24h\n", one},
		{"format in capitals", "CSV", "id,name,lat,lon,hours\nys-001,城关驿站,32.6,116.2,24h\n", one},
		{"yaml integer coordinates", "yaml", "- {id: ys-001, name: 城关驿站, lat: 32, lon: 116, hours: 24h}",
			[]Station{{ID: "ys-001", Name: "城关驿站", Lat: 32, Lon: 116, Hours: "24h"}}},
		{"yaml numeric-looking id", "yaml", "- {id: 001, name: 城关驿站, lat: 32.6, lon: 116.2, hours: 24h}",
			[]Station{{ID: "001", Name: "城关驿站", Lat: 32.6, Lon: 116.2, Hours: "24h"}}},
		{"yaml alias", "yaml",
			"stations:\n- {id: ys-001, name: &n 城关驿站, lat: 32.6, lon: 116.2, hours: 24h}\n" +
				"- {id: ys-002, name: *n, lat: 32.6, lon: 116.2, hours: 24h}\n",
			[]Station{one[0], {ID: "ys-002", Name: "城关驿站", Lat: 32.6, Lon: 116.2, Hours: "24h"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStations(strings.NewReader(tt.in), tt.format)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseStationsBad(t *testing.T) {
	const head = "id,name,lat,lon,hours\n"
	const row = "ys-001,城关驿站,32.6,116.2,24h\n"
	tests := []struct {
		name, format, in string
		want             string // the whole message
	}{
		// CSV header.
		{"csv unknown column", "csv", "id,name,lat,lon,hours,latitude\n",
			`line 1: unknown column "latitude" (want id, name, address, lat, lon, org, hours)`},
		{"csv missing column", "csv", "id,name,lon,hours\nys-001,城关驿站,116.2,24h\n",
			`line 1: missing column "lat"`},
		{"csv column twice", "csv", "id,name,lat,lon,hours,LAT\n", `line 1: column "lat" appears twice`},
		{"csv column without name", "csv", "id,name,lat,lon,hours,\n", `line 1: column 6 has no name`},
		{"csv header after blank lines", "csv", "\n\nid,name,lat,lon\n", `line 3: missing column "hours"`},
		{"csv header only", "csv", head, "no stations in the file"},

		// CSV rows.
		{"csv lat outside", "csv", head + row + "ys-002,慎城驿站,91.5,116.2,24h\n",
			`line 3: lat "91.5" outside -90..90`},
		{"csv lon outside", "csv", head + "ys-002,慎城驿站,32.6,-180.5,24h\n",
			`line 2: lon "-180.5" outside -180..180`},
		{"csv lat NaN", "csv", head + "ys-002,慎城驿站,NaN,116.2,24h\n", `line 2: lat "NaN" outside -90..90`},
		{"csv lat text", "csv", head + "ys-002,慎城驿站,32°37',116.2,24h\n",
			`line 2: lat "32°37'" is not a number`},
		{"csv lat empty", "csv", head + "ys-002,慎城驿站, ,116.2,24h\n", `line 2: lat is empty`},
		{"csv short row", "csv", head + "ys-002,慎城驿站,32.6,116.2\n",
			`line 2: 4 fields, but the header has 5`},
		{"csv bad id", "csv", head + "YS 1,城关驿站,32.6,116.2,24h\n",
			`line 2: station id "YS 1": want [a-z0-9][a-z0-9-]{0,31}`},
		{"csv reserved id", "csv", head + "alerts,城关驿站,32.6,116.2,24h\n",
			`line 2: station id "alerts" is reserved for alert topics`},
		{"csv empty name", "csv", head + "ys-001,,32.6,116.2,24h\n",
			`line 2: station ys-001: name is empty`},
		{"csv bad hours", "csv", head + "ys-001,城关驿站,32.6,116.2,8-18\n",
			`line 2: station ys-001: hours "8-18": want 24h or HH:MM-HH:MM`},
		{"csv bare quote", "csv", head + row + "ys-002,慎\"城,32.6,116.2,24h\n",
			`line 3: bare " in non-quoted-field`},
		{"csv duplicate id", "csv", head + row + "ys-002,慎城驿站,32.6,116.2,24h\n" + row,
			`line 4: station id "ys-001" is already on line 2`},
		{"csv line numbers past a quoted newline", "csv",
			"id,name,address,lat,lon,hours\n" +
				"ys-001,城关驿站,\"管仲大道\n18 号\",32.6,116.2,24h\n" +
				"ys-002,,,32.6,116.2,24h\n",
			`line 4: station ys-002: name is empty`},
		{"csv not UTF-8", "csv", head + "ys-001,\xb3\xc7\xb9\xd8,32.6,116.2,24h\n",
			`line 2: text is not UTF-8: save the file as "CSV UTF-8"`},
		{"csv every bad row listed in order", "csv",
			head + "ys-001,,32.6,116.2,24h\n" + "ys-002,慎城驿站,99,116.2,24h\n" + row,
			"line 2: station ys-001: name is empty\nline 3: lat \"99\" outside -90..90\n" +
				`line 4: station id "ys-001" is already on line 2`},

		// YAML.
		{"yaml unknown field", "yaml",
			"- id: ys-001\n  name: 城关驿站\n  lattitude: 32.6\n  lon: 116.2\n  hours: 24h\n",
			`line 3: unknown field "lattitude" (want id, name, address, lat, lon, org, hours)`},
		{"yaml unknown top-level key", "yaml", "station:\n  - id: ys-001\n",
			`line 1: unknown field "station": want a list of stations, or stations: and the list`},
		{"yaml quoted number", "yaml", "- {id: ys-001, name: 城关驿站, lat: \"32.6\", lon: 116.2, hours: 24h}",
			`line 1: lat "32.6" is not a number`},
		{"yaml lat outside", "yaml",
			"- id: ys-001\n  name: 城关驿站\n  lat: -90.01\n  lon: 116.2\n  hours: 24h\n",
			`line 3: lat "-90.01" outside -90..90`},
		{"yaml lat empty", "yaml", "- id: ys-001\n  name: 城关驿站\n  lat:\n  lon: 116.2\n  hours: 24h\n",
			`line 3: lat is empty`},
		{"yaml lat infinite", "yaml", "- {id: ys-001, name: 城关驿站, lat: .inf, lon: 116.2, hours: 24h}",
			`line 1: lat ".inf" outside -90..90`},
		{"yaml missing lon", "yaml", "- id: ys-001\n  name: 城关驿站\n  lat: 32.6\n  hours: 24h\n",
			`line 1: station has no "lon"`},
		{"yaml name is a list", "yaml",
			"- id: ys-001\n  name: [a, b]\n  lat: 32.6\n  lon: 116.2\n  hours: 24h\n",
			`line 2: name: want a value, got a list`},
		{"yaml key twice", "yaml", "- id: ys-001\n  id: ys-002\n", `line 2: field "id" appears twice`},
		{"yaml validation at the station's line", "yaml",
			"stations:\n  - id: ys-001\n    name: 城关驿站\n    lat: 32.6\n    lon: 116.2\n    hours: 9am\n",
			`line 2: station ys-001: hours "9am": want 24h or HH:MM-HH:MM`},
		{"yaml duplicate id", "yaml",
			"- {id: ys-001, name: a, lat: 1, lon: 1, hours: 24h}\n" +
				"- {id: ys-001, name: b, lat: 1, lon: 1, hours: 24h}\n",
			`line 2: station id "ys-001" is already on line 1`},
		{"yaml not a list", "yaml", "just text", `line 1: want a list of stations, got "just text"`},
		{"yaml stations not a list", "yaml", "stations: 3", `line 1: want a list of stations, got "3"`},
		{"yaml item not a mapping", "yaml", "- ys-001\n",
			`line 1: want a station (id, name, lat, ...), got "ys-001"`},
		{"yaml syntax", "yaml", "- id: ys-001\n\tname: 城关驿站\n",
			`line 2: found a tab character that violates indentation`},
		{"yaml two documents", "yaml", "- {id: a, name: a, lat: 1, lon: 1, hours: 24h}\n---\n- id: b\n",
			`line 2: a second YAML document: put every station in one list`},
		{"yaml empty list", "yaml", "stations: []\n", "no stations in the file"},
		{"yaml only a comment", "yaml", "# nothing yet\n", "no stations in the file"},

		// Format.
		{"unknown format", "json", "[]", `invalid: station file format "json": want csv or yaml`},
		{"format told by a key with commas after it", "", "station: [{id: a, name: b}]",
			`line 1: unknown field "station": want a list of stations, or stations: and the list`},
		{"format not told", "", "hello\n", "cannot tell the format: want a CSV header row " +
			"(id,name,lat,lon,hours,...) or a YAML list of stations"},
		{"empty", "", " \n\n", "no stations in the file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStations(strings.NewReader(tt.in), tt.format)
			if err == nil {
				t.Fatalf("accepted: %+v", got)
			}
			if got != nil {
				t.Errorf("a rejected file still gave stations: %+v", got)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
		})
	}
}

func TestParseStationsProblemLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,name,lat,lon,hours\n")
	for range MaxImportProblems + 5 {
		b.WriteString("ys-001,,32.6,116.2,24h\n")
	}
	_, err := ParseStations(strings.NewReader(b.String()), "csv")
	ie, ok := errors.AsType[*ImportError](err)
	if !ok {
		t.Fatalf("got %v, want an *ImportError", err)
	}
	if len(ie.Problems) != MaxImportProblems || ie.More != 5 {
		t.Errorf("%d problems listed and %d more, want %d and 5", len(ie.Problems), ie.More,
			MaxImportProblems)
	}
	if !strings.HasSuffix(err.Error(), "\n(and 5 more problems)") {
		t.Errorf("message does not count the rest: ...%s", err.Error()[len(err.Error())-40:])
	}
}

func TestParseStationsTooLarge(t *testing.T) {
	in := "id,name,lat,lon,hours\n" + strings.Repeat("#", MaxImportBytes)
	_, err := ParseStations(strings.NewReader(in), "csv")
	if err == nil || !strings.Contains(err.Error(), "larger than 4 MiB") {
		t.Errorf("got %v, want a size error", err)
	}
}

func FuzzParseStations(f *testing.F) {
	for _, name := range []string{"stations.csv", "stations.yaml", "stations-wrapped.yml",
		"bad-lat.csv", "typo.yaml", "duplicate.csv"} {
		buf, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf, "")
	}
	f.Add([]byte("id,name,lat,lon,hours\nys-001,a,1,2,24h\n"), "csv")
	f.Add([]byte("- &a {id: a, name: *a}\n"), "yaml")
	f.Add([]byte("stations: &s [*s]\n"), "yaml")

	f.Fuzz(func(t *testing.T, in []byte, format string) {
		got, err := ParseStations(strings.NewReader(string(in)), format)
		if err != nil {
			if got != nil {
				t.Fatalf("error %v with stations %+v", err, got)
			}
			return
		}
		if len(got) == 0 {
			t.Fatal("no error and no stations")
		}
		seen := map[string]bool{}
		for _, s := range got {
			if err := s.Validate(); err != nil {
				t.Fatalf("returned an invalid station: %v", err)
			}
			if seen[s.ID] {
				t.Fatalf("returned station %s twice", s.ID)
			}
			seen[s.ID] = true
		}
	})
}
