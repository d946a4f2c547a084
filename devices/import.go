package devices

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Station file formats accepted by ParseStations.
const (
	FormatCSV  = "csv"
	FormatYAML = "yaml"
)

// MaxImportBytes bounds a station file. A county's stations take a few
// kilobytes; anything near this is not a station file.
const MaxImportBytes = 4 << 20

// MaxImportProblems is how many problems an ImportError lists; the rest are
// only counted.
const MaxImportProblems = 20

// stationColumns are the fields of a station file, in the order help texts
// list them. Created is not among them: the registry sets it.
var stationColumns = []string{"id", "name", "address", "lat", "lon", "org", "hours"}

// requiredColumns must be present in every station: a missing lat or lon
// would otherwise read as 0, a place in the Gulf of Guinea.
var requiredColumns = []string{"id", "name", "lat", "lon", "hours"}

// Problem is one thing wrong in a station file.
type Problem struct {
	Line   int    // 1-based; 0 when the problem is the file as a whole
	Reason string // what is wrong, in words a person can act on
}

// ImportError rejects a station file whole. It lists the problems found, in
// line order, so a file can be fixed in one pass. It matches ErrInvalid.
type ImportError struct {
	File     string // the file's name; empty when parsed from a reader
	Problems []Problem
	More     int // problems found past the first MaxImportProblems
}

// Error prints one problem a line, as "file:line: reason" (or "line N:
// reason" without a file name), the form editors and terminals link to.
func (e *ImportError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		switch {
		case e.File != "" && p.Line > 0:
			fmt.Fprintf(&b, "%s:%d: ", e.File, p.Line)
		case e.File != "":
			fmt.Fprintf(&b, "%s: ", e.File)
		case p.Line > 0:
			fmt.Fprintf(&b, "line %d: ", p.Line)
		}
		b.WriteString(p.Reason)
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n(and %d more problems)", e.More)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *ImportError) Unwrap() error { return ErrInvalid }

// ParseStationsFile reads a station file; its extension (.csv, .yaml or
// .yml) gives the format. Problems are reported against path.
func ParseStationsFile(path string) ([]Station, error) {
	var format string
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		format = FormatCSV
	case ".yaml", ".yml":
		format = FormatYAML
	default:
		return nil, fmt.Errorf("%s: %w: unknown extension, want .csv, .yaml or .yml",
			path, ErrInvalid)
	}

	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read stations: %w", err)
	}
	defer f.Close()

	list, err := ParseStations(f, format)
	if ie, ok := errors.AsType[*ImportError](err); ok {
		ie.File = path
	}
	return list, err
}

// ParseStations reads stations from r in format FormatCSV, FormatYAML, or ""
// to tell from the content. A file with any problem is rejected whole with
// an *ImportError; every station returned has passed Station.Validate and
// no id appears twice.
//
// CSV has a header row naming its columns, in any order, from id, name,
// address, lat, lon, org and hours; id, name, lat, lon and hours are
// required. YAML is a list of stations, or a mapping whose only key is
// "stations" holding that list; each station a mapping with the same keys.
// Unknown columns and keys are errors, so a misspelt one is not silently
// lost.
func ParseStations(r io.Reader, format string) ([]Station, error) {
	buf, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read stations: %w", err)
	}
	if len(buf) > MaxImportBytes {
		return nil, fileProblem("file is larger than %d MiB; is it a station file?",
			MaxImportBytes>>20)
	}
	// Spreadsheets often save UTF-8 with a byte order mark.
	buf = bytes.TrimPrefix(buf, []byte("\uFEFF"))

	if format == "" {
		if format, err = guessFormat(buf); err != nil {
			return nil, err
		}
	}
	p := &parser{}
	switch strings.ToLower(format) {
	case FormatCSV:
		p.csv(buf)
	case FormatYAML:
		p.yaml(buf)
	default:
		return nil, fmt.Errorf("%w: station file format %q: want csv or yaml", ErrInvalid, format)
	}
	return p.result()
}

// guessFormat tells CSV from YAML by the first line that says something:
// YAML starts with a list item, a document marker, a flow collection or a key;
// CSV with a header of comma-separated names.
func guessFormat(buf []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(buf))
	sc.Buffer(nil, MaxImportBytes)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case line == "-" || line == "---" || strings.HasPrefix(line, "- ") ||
			strings.HasPrefix(line, "[") || strings.HasPrefix(line, "{") ||
			strings.HasPrefix(line, "stations:"):
			return FormatYAML, nil
		case strings.Contains(line, ": ") || strings.HasSuffix(line, ":"):
			return FormatYAML, nil
		case strings.Contains(line, ","):
			return FormatCSV, nil
		}
		return "", fileProblem("cannot tell the format: want a CSV header row " +
			"(id,name,lat,lon,hours,...) or a YAML list of stations")
	}
	return "", fileProblem("no stations in the file")
}

func fileProblem(format string, args ...any) *ImportError {
	return &ImportError{Problems: []Problem{{Reason: fmt.Sprintf(format, args...)}}}
}

// parser collects the stations of a file and the problems found in it.
type parser struct {
	stations []Station
	problems []Problem
	more     int
	idLine   map[string]int // line of each id seen, to name both lines of a duplicate
}

func (p *parser) problem(line int, format string, args ...any) {
	if len(p.problems) >= MaxImportProblems {
		p.more++
		return
	}
	p.problems = append(p.problems, Problem{Line: line, Reason: fmt.Sprintf(format, args...)})
}

// add keeps a station read at line after checking it. fieldsOK is false
// when reading its fields found a problem, already reported; its id still
// counts, so a duplicate is reported in the same pass.
func (p *parser) add(s Station, line int, fieldsOK bool) {
	if p.idLine == nil {
		p.idLine = map[string]int{}
	}
	if first, ok := p.idLine[s.ID]; ok && s.ID != "" {
		p.problem(line, "station id %q is already on line %d", s.ID, first)
		return
	}
	p.idLine[s.ID] = line
	if !fieldsOK {
		return
	}

	if err := s.Validate(); err != nil {
		p.problem(line, "%s", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
		return
	}
	p.stations = append(p.stations, s)
}

func (p *parser) result() ([]Station, error) {
	if len(p.problems) == 0 && len(p.stations) == 0 {
		p.problem(0, "no stations in the file")
	}
	if len(p.problems) > 0 {
		slices.SortStableFunc(p.problems, func(a, b Problem) int { return a.Line - b.Line })
		return nil, &ImportError{Problems: p.problems, More: p.more}
	}
	return p.stations, nil
}

// coordinate parses lat or lon, whose text is raw, and checks its range.
func (p *parser) coordinate(line int, name, raw string, limit float64) (float64, bool) {
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		p.problem(line, "%s %q is not a number", name, raw)
		return 0, false
	}
	return p.coordinateRange(line, name, raw, v, limit)
}

func (p *parser) coordinateRange(line int, name, raw string, v, limit float64) (float64, bool) {
	if math.IsNaN(v) || v < -limit || v > limit {
		p.problem(line, "%s %q outside %g..%g", name, raw, -limit, limit)
		return 0, false
	}
	return v, true
}

// csv reads a CSV file with a header row.
func (p *parser) csv(buf []byte) {
	r := csv.NewReader(bytes.NewReader(buf))
	r.FieldsPerRecord = -1 // counted here, for a better message
	r.TrimLeadingSpace = true

	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return
	}
	if err != nil {
		p.csvError(err)
		return
	}
	headerLine, _ := r.FieldPos(0)
	col := map[string]int{}
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(name))
		switch {
		case name == "":
			p.problem(headerLine, "column %d has no name", i+1)
		case !slices.Contains(stationColumns, name):
			p.problem(headerLine, "unknown column %q (want %s)", name,
				strings.Join(stationColumns, ", "))
		case hasKey(col, name):
			p.problem(headerLine, "column %q appears twice", name)
		default:
			col[name] = i
		}
	}
	for _, name := range requiredColumns {
		if !hasKey(col, name) {
			p.problem(headerLine, "missing column %q", name)
		}
	}
	if len(p.problems) > 0 {
		return
	}

	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			p.csvError(err)
			return
		}
		line, _ := r.FieldPos(0)
		if blank(rec) {
			continue // spreadsheets export empty rows as a line of commas
		}
		if len(rec) != len(header) {
			p.problem(line, "%d fields, but the header has %d", len(rec), len(header))
			continue
		}
		s, ok := p.csvStation(line, rec, col)
		p.add(s, line, ok)
	}
}

// csvStation builds the station of one row; ok is false when the row had a
// problem, already reported, and s holds what could be read.
func (p *parser) csvStation(line int, rec []string, col map[string]int) (s Station, ok bool) {
	cell := func(name string) string {
		if i, ok := col[name]; ok {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	s = Station{ID: cell("id"), Name: cell("name"), Address: cell("address"), Org: cell("org"),
		Hours: cell("hours")}
	for _, v := range rec {
		if !utf8.ValidString(v) {
			p.problem(line, "text is not UTF-8: save the file as \"CSV UTF-8\"")
			return s, false
		}
	}
	for _, c := range []struct {
		name  string
		limit float64
		to    *float64
	}{{"lat", 90, &s.Lat}, {"lon", 180, &s.Lon}} {
		raw := cell(c.name)
		if raw == "" {
			p.problem(line, "%s is empty", c.name)
			return s, false
		}
		v, ok := p.coordinate(line, c.name, raw, c.limit)
		if !ok {
			return s, false
		}
		*c.to = v
	}
	return s, true
}

func (p *parser) csvError(err error) {
	if pe, ok := errors.AsType[*csv.ParseError](err); ok {
		p.problem(pe.Line, "%v", pe.Err)
		return
	}
	p.problem(0, "%v", err)
}

func blank(rec []string) bool {
	for _, v := range rec {
		if strings.TrimSpace(v) != "" {
			return false
		}
	}
	return true
}

func hasKey(m map[string]int, k string) bool {
	_, ok := m[k]
	return ok
}

// yaml reads a YAML file. It walks the node tree rather than decoding into
// a struct, so that every problem is reported at the line of the key or
// value it is about, and an unknown key is named as such.
func (p *parser) yaml(buf []byte) {
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
			return
		}
		p.problem(extra.Line, "a second YAML document: put every station in one list")
		return
	}

	list := ResolveYAML(&doc)
	if list.Kind == yaml.DocumentNode && len(list.Content) == 1 {
		list = ResolveYAML(list.Content[0])
	}
	if list.Kind == yaml.MappingNode {
		list = p.stationsKey(list)
		if list == nil {
			return
		}
	}
	switch {
	case isNull(list):
		return
	case list.Kind != yaml.SequenceNode:
		p.problem(list.Line, "want a list of stations, got %s", describe(list))
		return
	}

	for _, item := range list.Content {
		item = ResolveYAML(item)
		if item.Kind != yaml.MappingNode {
			p.problem(item.Line, "want a station (id, name, lat, ...), got %s", describe(item))
			continue
		}
		s, ok := p.yamlStation(item)
		p.add(s, item.Line, ok)
	}
}

// stationsKey returns the list under the top-level key "stations".
func (p *parser) stationsKey(m *yaml.Node) *yaml.Node {
	var list *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Value != "stations" {
			p.problem(k.Line,
				"unknown field %q: want a list of stations, or stations: and the list", k.Value)
			continue
		}
		list = ResolveYAML(v)
	}
	if list == nil && len(p.problems) == 0 {
		p.problem(m.Line, `no "stations" key`)
	}
	if len(p.problems) > 0 {
		return nil
	}
	return list
}

// yamlStation builds the station of one mapping; ok is false when it had a
// problem, already reported, and s holds what could be read.
func (p *parser) yamlStation(m *yaml.Node) (s Station, ok bool) {
	texts := map[string]*string{"id": &s.ID, "name": &s.Name, "address": &s.Address,
		"org": &s.Org, "hours": &s.Hours}
	seen := map[string]bool{}
	ok = true
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], ResolveYAML(m.Content[i+1])
		name := k.Value
		switch {
		case !slices.Contains(stationColumns, name):
			p.problem(k.Line, "unknown field %q (want %s)", name,
				strings.Join(stationColumns, ", "))
			ok = false
			continue
		case seen[name]:
			p.problem(k.Line, "field %q appears twice", name)
			ok = false
			continue
		}
		seen[name] = true

		if v.Kind != yaml.ScalarNode {
			p.problem(v.Line, "%s: want a value, got %s", name, describe(v))
			ok = false
			continue
		}
		if to, isText := texts[name]; isText {
			if !isNull(v) {
				*to = strings.TrimSpace(v.Value)
			}
			continue
		}

		// lat or lon: a YAML number, not text that looks like one.
		limit, to := 90.0, &s.Lat
		if name == "lon" {
			limit, to = 180, &s.Lon
		}
		var f float64
		switch {
		case isNull(v):
			p.problem(v.Line, "%s is empty", name)
			ok = false
		case v.Tag != "!!float" && v.Tag != "!!int" || v.Decode(&f) != nil:
			p.problem(v.Line, "%s %q is not a number", name, v.Value)
			ok = false
		default:
			var inRange bool
			*to, inRange = p.coordinateRange(v.Line, name, v.Value, f, limit)
			ok = ok && inRange
		}
	}
	if !ok {
		return s, false
	}
	for _, name := range requiredColumns {
		if !seen[name] {
			p.problem(m.Line, "station has no %q", name)
			ok = false
		}
	}
	return s, ok
}

func (p *parser) yamlError(err error) {
	YAMLErrorLines(err, func(line int, reason string) { p.problem(line, "%s", reason) })
}

// YAMLErrorLines reports each problem of a YAML decoding error with its
// line (0 when the decoder gave none), so importers can list every problem
// of a file the way they list their own.
func YAMLErrorLines(err error, report func(line int, reason string)) {
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		for _, msg := range te.Errors {
			yamlLineMessage(msg, report)
		}
		return
	}
	yamlLineMessage(strings.TrimPrefix(err.Error(), "yaml: "), report)
}

// yamlLineMessage splits a decoder message of the form "line N: reason".
func yamlLineMessage(msg string, report func(line int, reason string)) {
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, reason, found := strings.Cut(rest, ": ")
		if n, err := strconv.Atoi(num); found && err == nil {
			report(n, reason)
			return
		}
	}
	report(0, msg)
}

// ResolveYAML follows an alias to the node it names.
func ResolveYAML(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
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
