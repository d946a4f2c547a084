package controller

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// MaxTimetableBytes bounds a crews file.
const MaxTimetableBytes = 1 << 20

// ParseTimetable reads a crews file (YAML; JSON is YAML too). A file with
// any problem is rejected whole with a *devices.ImportError naming each
// problem's line; file names the file in the messages. known says whether
// a station id is registered; nil accepts any valid id.
//
// The file is a mapping:
//
//	defaults:            # optional: the county-wide climate policy
//	  cool_at_c: 30      # cool when outdoor >= this, °C
//	  cool_to_c: 26
//	  heat_at_c: 5       # heat when outdoor <= this, °C
//	  heat_to_c: 18
//	  rest_min: 45       # keep running this long after the shift change
//	stations:            # optional: a station's changes to the defaults
//	  ys-003: {cool_to_c: 27, rest_min: 30}
//	crews:
//	  - id: sanitation-a
//	    name: Sanitation crew A
//	    time_zone: Asia/Shanghai
//	    stations: [ys-001, ys-002]
//	    week:            # mon..sun, daily, weekdays, weekend, or ranges: mon-fri
//	      weekdays: ["05:30", "11:30", "14:00", "17:30"]
//	      sat: ["05:30", "11:30"]
//	    seasons:
//	      - {name: summer, from: "06-01", to: "09-30", week: {daily: ["05:00", "17:30"]}}
//	    exceptions:
//	      - {date: "10-26", note: sanitation workers' day, shifts: []}
//	      - {date: "2025-10-01", shifts: ["08:00"]}
//
// A bare list of crews is accepted too.
func ParseTimetable(file string, data []byte, known func(station string) bool) (Timetable, error) {
	tp := &ttParser{known: known}
	if len(data) > MaxTimetableBytes {
		tp.problem(0, "file is larger than %d MiB; is it a crews file?", MaxTimetableBytes>>20)
	} else {
		tp.parse(bytes.TrimPrefix(data, []byte("\uFEFF")))
	}
	if len(tp.problems) == 0 && len(tp.tt.Crews) == 0 && tp.tt.Defaults == nil &&
		len(tp.tt.Stations) == 0 {
		tp.problem(0, "no crews in the file")
	}
	if len(tp.problems) > 0 {
		slices.SortStableFunc(tp.problems, func(a, b devices.Problem) int { return a.Line - b.Line })
		return Timetable{}, &devices.ImportError{File: file, Problems: tp.problems, More: tp.more}
	}
	return tp.tt, nil
}

// ttParser collects a timetable and the problems found in it.
type ttParser struct {
	known    func(string) bool
	tt       Timetable
	problems []devices.Problem
	more     int
}

func (p *ttParser) problem(line int, format string, args ...any) {
	if len(p.problems) >= devices.MaxImportProblems {
		p.more++
		return
	}
	p.problems = append(p.problems, devices.Problem{Line: line, Reason: fmt.Sprintf(format, args...)})
}

func (p *ttParser) parse(buf []byte) {
	dec := yaml.NewDecoder(bytes.NewReader(buf))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			p.yamlError(err)
		}
		return
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			p.yamlError(err)
		} else {
			p.problem(extra.Line, "a second YAML document: put everything in one")
		}
		return
	}
	root := devices.ResolveYAML(&doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = devices.ResolveYAML(root.Content[0])
	}
	switch root.Kind {
	case yaml.SequenceNode:
		p.crews(root)
		return
	case yaml.MappingNode:
	default:
		p.problem(root.Line, "want a mapping with crews: (and optionally defaults:, stations:), "+
			"got %s", ttDescribe(root))
		return
	}
	p.fields(root, "file", func(key string, k, v *yaml.Node) bool {
		switch key {
		case "defaults":
			if ch, ok := p.policy(v); ok {
				p.tt.Defaults = &ch
			}
		case "stations":
			p.stationPolicies(v)
		case "crews":
			p.crews(v)
		default:
			return false
		}
		return true
	}, "defaults, stations, crews")
}

// fields walks a mapping, calling f for each key; f returns false for an
// unknown key, reported with want. A key given twice is a problem.
func (p *ttParser) fields(m *yaml.Node, what string, f func(key string, k, v *yaml.Node) bool,
	want string) {
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], devices.ResolveYAML(m.Content[i+1])
		if first, dup := seen[k.Value]; dup {
			p.problem(k.Line, "%s: %q is already on line %d", what, k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		if !f(k.Value, k, v) {
			p.problem(k.Line, "%s: unknown field %q (want %s)", what, k.Value, want)
		}
	}
}

// policy reads a policy change.
func (p *ttParser) policy(m *yaml.Node) (PolicyChange, bool) {
	var ch PolicyChange
	if m.Kind != yaml.MappingNode {
		p.problem(m.Line, "want a policy (cool_at_c, cool_to_c, heat_at_c, heat_to_c, rest_min), "+
			"got %s", ttDescribe(m))
		return ch, false
	}
	before := len(p.problems) + p.more
	p.fields(m, "policy", func(key string, _, v *yaml.Node) bool {
		var to **float64
		switch key {
		case "cool_at_c":
			to = &ch.CoolAtC
		case "cool_to_c":
			to = &ch.CoolToC
		case "heat_at_c":
			to = &ch.HeatAtC
		case "heat_to_c":
			to = &ch.HeatToC
		case "rest_min":
			n, err := strconv.Atoi(v.Value)
			switch {
			case v.Kind != yaml.ScalarNode || v.Tag != "!!int" || err != nil:
				p.problem(v.Line, "rest_min %q: want whole minutes", v.Value)
			case n < 0 || n > 240:
				p.problem(v.Line, "rest_min %d: want 0 to 240 minutes", n)
			default:
				ch.RestMin = &n
			}
			return true
		case "off":
			var b bool
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" || v.Decode(&b) != nil {
				p.problem(v.Line, "off %q: want true or false", v.Value)
			} else {
				ch.Off = &b
			}
			return true
		default:
			return false
		}
		var f float64
		switch {
		case v.Kind != yaml.ScalarNode || (v.Tag != "!!int" && v.Tag != "!!float") || v.Decode(&f) != nil:
			p.problem(v.Line, "%s %q: want a temperature in °C", key, v.Value)
		case strings.HasSuffix(key, "_to_c") && (f < schemas.MinSetpointC || f > schemas.MaxSetpointC):
			p.problem(v.Line, "%s %g: want a setpoint of %d to %d °C", key, f, schemas.MinSetpointC,
				schemas.MaxSetpointC)
		case f < -50 || f > 60:
			p.problem(v.Line, "%s %g: want an outdoor temperature of -50 to 60 °C", key, f)
		default:
			*to = &f
		}
		return true
	}, "cool_at_c, cool_to_c, heat_at_c, heat_to_c, rest_min, off")
	if len(p.problems)+p.more != before {
		return ch, false
	}
	if err := ch.apply(DefaultClimatePolicy).check(); err != nil && ch.CoolAtC != nil &&
		ch.HeatAtC != nil {
		p.problem(m.Line, "%v", err)
		return ch, false
	}
	return ch, true
}

func (p *ttParser) stationPolicies(m *yaml.Node) {
	if m.Kind != yaml.MappingNode {
		p.problem(m.Line, "stations: want a mapping of station id to policy, got %s", ttDescribe(m))
		return
	}
	p.tt.Stations = map[string]PolicyChange{}
	p.fields(m, "stations", func(key string, k, v *yaml.Node) bool {
		if !p.station(k.Line, key) {
			return true
		}
		if ch, ok := p.policy(v); ok {
			p.tt.Stations[key] = ch
		}
		return true
	}, "station ids")
}

// station checks a station id.
func (p *ttParser) station(line int, id string) bool {
	switch {
	case !schemas.ValidID(id):
		p.problem(line, "station id %q: want [a-z0-9][a-z0-9-]{0,31}", id)
		return false
	case p.known != nil && !p.known(id):
		p.problem(line, "station %q is not registered", id)
		return false
	}
	return true
}

func (p *ttParser) crews(list *yaml.Node) {
	if ttNull(list) {
		return
	}
	if list.Kind != yaml.SequenceNode {
		p.problem(list.Line, "crews: want a list of crews, got %s", ttDescribe(list))
		return
	}
	idLine := map[string]int{}
	for _, item := range list.Content {
		item = devices.ResolveYAML(item)
		if item.Kind != yaml.MappingNode {
			p.problem(item.Line, "want a crew (id, time_zone, stations, week, ...), got %s",
				ttDescribe(item))
			continue
		}
		cr, ok := p.crew(item)
		if first, dup := idLine[cr.ID]; dup && cr.ID != "" {
			p.problem(item.Line, "crew id %q is already on line %d", cr.ID, first)
			continue
		}
		idLine[cr.ID] = item.Line
		if ok {
			p.tt.Crews = append(p.tt.Crews, cr)
		}
	}
}

// crew reads one crew; ok is false when it had a problem, already reported.
func (p *ttParser) crew(m *yaml.Node) (Crew, bool) {
	before := len(p.problems) + p.more
	cr := Crew{Week: Week{}}
	var has struct{ id, tz, stations, times bool }
	p.fields(m, "crew", func(key string, k, v *yaml.Node) bool {
		switch key {
		case "id":
			has.id = true
			if cr.ID = v.Value; v.Kind != yaml.ScalarNode || !schemas.ValidID(cr.ID) {
				p.problem(v.Line, "crew id %q: want [a-z0-9][a-z0-9-]{0,31}", v.Value)
			}
		case "name":
			if cr.Name = strings.TrimSpace(v.Value); v.Kind != yaml.ScalarNode || len(cr.Name) > 128 {
				p.problem(v.Line, "name: want text of up to 128 bytes")
			}
		case "time_zone":
			has.tz = true
			cr.TimeZone = strings.TrimSpace(v.Value)
			if _, err := time.LoadLocation(cr.TimeZone); err != nil || cr.TimeZone == "" ||
				v.Kind != yaml.ScalarNode {
				p.problem(v.Line, "time_zone %q: want an IANA zone name such as Asia/Shanghai",
					v.Value)
			}
		case "stations":
			has.stations = true
			ids, ok := p.strings(v, "stations")
			if !ok {
				return true
			}
			for i, id := range ids {
				line := v.Content[i].Line
				if !p.station(line, id) {
					continue
				}
				if slices.Contains(cr.Stations, id) {
					p.problem(line, "station %q is listed twice", id)
					continue
				}
				cr.Stations = append(cr.Stations, id)
			}
		case "week":
			cr.Week = p.week(v)
			has.times = has.times || len(cr.Week) > 0
		case "seasons":
			cr.Seasons = p.seasons(v)
			has.times = has.times || len(cr.Seasons) > 0
		case "exceptions":
			cr.Exceptions = p.exceptions(v)
		default:
			return false
		}
		return true
	}, "id, name, time_zone, stations, week, seasons, exceptions")
	for _, f := range []struct {
		ok   bool
		name string
	}{{has.id, "id"}, {has.tz, "time_zone"}, {has.stations, "stations"}} {
		if !f.ok {
			p.problem(m.Line, "crew has no %q", f.name)
		}
	}
	if has.stations && len(cr.Stations) == 0 && len(p.problems)+p.more == before {
		p.problem(m.Line, "crew %s rests at no station", cr.ID)
	}
	if !has.times && len(p.problems)+p.more == before {
		p.problem(m.Line, "crew %s has no shift-change times: give week or seasons", cr.ID)
	}
	return cr, len(p.problems)+p.more == before
}

// strings reads a list of plain texts.
func (p *ttParser) strings(v *yaml.Node, what string) ([]string, bool) {
	if ttNull(v) {
		return nil, true
	}
	if v.Kind != yaml.SequenceNode {
		p.problem(v.Line, "%s: want a list, got %s", what, ttDescribe(v))
		return nil, false
	}
	out := make([]string, 0, len(v.Content))
	ok := true
	for _, item := range v.Content {
		item = devices.ResolveYAML(item)
		if item.Kind != yaml.ScalarNode || ttNull(item) {
			p.problem(item.Line, "%s: want text, got %s", what, ttDescribe(item))
			ok = false
			continue
		}
		out = append(out, strings.TrimSpace(item.Value))
	}
	return out, ok
}

// times reads a list of "HH:MM" shift-change times, sorted.
func (p *ttParser) times(v *yaml.Node, what string) []string {
	list, ok := p.strings(v, what)
	if !ok {
		return nil
	}
	out := []string{}
	for i, s := range list {
		line := devices.ResolveYAML(v.Content[i]).Line
		if _, _, ok := shiftClock(s); !ok {
			if n, err := strconv.Atoi(s); err == nil {
				// YAML 1.1 reads an unquoted 05:30 as a base-60 number.
				p.problem(line, "%s: %d is not a time: write \"HH:MM\" in quotes", what, n)
			} else {
				p.problem(line, "%s: %q: want a time \"HH:MM\" (00:00 to 23:59)", what, s)
			}
			continue
		}
		if slices.Contains(out, s) {
			p.problem(line, "%s: %s is listed twice", what, s)
			continue
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// dayGroups are the names a week key may use for several days.
var dayGroups = map[string][]string{
	"daily":    {"mon", "tue", "wed", "thu", "fri", "sat", "sun"},
	"weekdays": {"mon", "tue", "wed", "thu", "fri"},
	"weekend":  {"sat", "sun"},
}

// weekOrder is mon..sun, for ranges such as mon-fri.
var weekOrder = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// days reads a week key: a day, a group, or a range such as mon-fri or
// fri-mon.
func weekKeyDays(key string) ([]string, bool) {
	key = strings.ToLower(strings.TrimSpace(key))
	if g, ok := dayGroups[key]; ok {
		return g, true
	}
	if slices.Contains(weekOrder, key) {
		return []string{key}, true
	}
	from, to, isRange := strings.Cut(key, "-")
	i, j := slices.Index(weekOrder, from), slices.Index(weekOrder, to)
	if !isRange || i < 0 || j < 0 {
		return nil, false
	}
	var out []string
	for k := i; ; k = (k + 1) % 7 {
		out = append(out, weekOrder[k])
		if k == j {
			return out, true
		}
	}
}

func (p *ttParser) week(v *yaml.Node) Week {
	w := Week{}
	if ttNull(v) {
		return w
	}
	if v.Kind != yaml.MappingNode {
		p.problem(v.Line, "week: want a mapping of days to times, got %s", ttDescribe(v))
		return w
	}
	dayLine := map[string]int{}
	p.fields(v, "week", func(key string, k, tv *yaml.Node) bool {
		days, ok := weekKeyDays(key)
		if !ok {
			return false
		}
		times := p.times(tv, key)
		for _, d := range days {
			if first, dup := dayLine[d]; dup {
				p.problem(k.Line, "week: %s already has times on line %d", d, first)
				continue
			}
			dayLine[d] = k.Line
			w[d] = times
		}
		return true
	}, "mon..sun, daily, weekdays, weekend, or a range such as mon-fri")
	return w
}

// dateOrDay checks a date "YYYY-MM-DD" or a yearly day "MM-DD".
func dateOrDay(s string) (string, bool) {
	if _, err := time.Parse(time.DateOnly, s); err == nil {
		return s, true
	}
	if _, err := time.Parse("2006-01-02", "2000-"+s); err == nil && len(s) == 5 {
		return s, true // 2000 is a leap year: 02-29 is a day some years have
	}
	return "", false
}

func (p *ttParser) seasons(v *yaml.Node) []Season {
	if ttNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.problem(v.Line, "seasons: want a list, got %s", ttDescribe(v))
		return nil
	}
	var out []Season
	for _, item := range v.Content {
		item = devices.ResolveYAML(item)
		if item.Kind != yaml.MappingNode {
			p.problem(item.Line, "want a season (name, from, to, week), got %s", ttDescribe(item))
			continue
		}
		var s Season
		hasWeek := false
		p.fields(item, "season", func(key string, _, fv *yaml.Node) bool {
			switch key {
			case "name":
				s.Name = strings.TrimSpace(fv.Value)
			case "from", "to":
				d, ok := dateOrDay(strings.TrimSpace(fv.Value))
				if !ok || fv.Kind != yaml.ScalarNode {
					p.problem(fv.Line, "season %s %q: want \"MM-DD\" (every year) or "+
						"\"YYYY-MM-DD\"", key, fv.Value)
				}
				if key == "from" {
					s.From = d
				} else {
					s.To = d
				}
			case "week":
				hasWeek = true
				s.Week = p.week(fv)
			default:
				return false
			}
			return true
		}, "name, from, to, week")
		switch {
		case s.From == "" || s.To == "":
			p.problem(item.Line, "season needs from and to")
		case len(s.From) != len(s.To):
			p.problem(item.Line, "season from %s to %s: give both as MM-DD or both as YYYY-MM-DD",
				s.From, s.To)
		case len(s.From) == 10 && s.From > s.To:
			p.problem(item.Line, "season from %s to %s ends before it starts", s.From, s.To)
		case !hasWeek:
			p.problem(item.Line, "season %s has no week", s.Name)
		}
		out = append(out, s)
	}
	return out
}

func (p *ttParser) exceptions(v *yaml.Node) []Exception {
	if ttNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.problem(v.Line, "exceptions: want a list, got %s", ttDescribe(v))
		return nil
	}
	var out []Exception
	dateLine := map[string]int{}
	for _, item := range v.Content {
		item = devices.ResolveYAML(item)
		if item.Kind != yaml.MappingNode {
			p.problem(item.Line, "want an exception (date, shifts, note), got %s", ttDescribe(item))
			continue
		}
		e := Exception{Shifts: []string{}}
		hasShifts, hasDate := false, false
		p.fields(item, "exception", func(key string, _, fv *yaml.Node) bool {
			switch key {
			case "date":
				hasDate = true
				d, ok := dateOrDay(strings.TrimSpace(fv.Value))
				if !ok || fv.Kind != yaml.ScalarNode {
					p.problem(fv.Line, "exception date %q: want \"YYYY-MM-DD\", or \"MM-DD\" "+
						"for every year", fv.Value)
				}
				e.Date = d
			case "shifts":
				hasShifts = true
				e.Shifts = p.times(fv, "shifts")
			case "note":
				e.Note = strings.TrimSpace(fv.Value)
			default:
				return false
			}
			return true
		}, "date, shifts, note")
		switch {
		case e.Date == "":
			if !hasDate {
				p.problem(item.Line, "exception needs a date")
			}
			continue
		case !hasShifts:
			p.problem(item.Line, "exception %s needs shifts: [] for no shift change, or the "+
				"times of the day", e.Date)
		}
		if first, dup := dateLine[e.Date]; dup {
			p.problem(item.Line, "exception %s is already on line %d", e.Date, first)
			continue
		}
		dateLine[e.Date] = item.Line
		out = append(out, e)
	}
	return out
}

func (p *ttParser) yamlError(err error) {
	devices.YAMLErrorLines(err, func(line int, reason string) { p.problem(line, "%s", reason) })
}

func ttNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func ttDescribe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}
