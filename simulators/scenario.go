package simulators

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/waystation/waystation/schemas"
)

// A Scenario is a script of things that happen to a fleet at set times: a
// fault, a recovery, a dropped link, a power cut, a battery in thermal
// runaway. Scenarios are YAML files; the ones shipped with the simulators
// live in scenarios/ and are listed by Scenarios.
//
//	name: bad-night
//	description: Several faults between 01:00 and 05:00.
//	start: "2025-07-21 00:30"   # where the clock starts unless told otherwise
//	weather_offset_c: 0         # added to the outdoor temperature all day
//	events:
//	  - at: "02:00"             # HH:MM after the start, +90m from it, or a date and time
//	    station: ys-004         # or device: ys-004-ac; kind: narrows a station
//	    do: power_loss
//	    for: 50m
type Scenario struct {
	Name        string
	Description string
	File        string    // where it was read from, for messages
	Start       time.Time // zero when the file names none
	// WeatherOffsetC is added to the outdoor temperature everywhere.
	WeatherOffsetC float64
	Events         []ScenarioEvent
}

// ScenarioEvent is one line of a scenario's script.
type ScenarioEvent struct {
	Line int // in the file, for messages

	// When: Offset after the start, or the first Clock (time of day) at or
	// after the start plus Day-1 days, or an absolute At.
	Offset time.Duration
	Clock  time.Duration // since midnight; -1 when not given
	Day    int
	At     time.Time

	Device  string       // one device, or
	Station string       // every device of a station that can do it
	Kind    schemas.Kind // narrows Station to one kind
	Do      string       // one of the Action* names

	Code  string        // fault
	Slot  int           // overheat, thermal_runaway
	For   time.Duration // power_loss, link_drop; mains_loss until restored
	Pct   float64       // battery
	Date  time.Time     // pads_expire
	isSet map[string]bool
}

// Scenario actions.
const (
	ActionFault          = "fault"           // ac: a fault code (code)
	ActionRecover        = "recover"         // any: clear every fault
	ActionLinkDrop       = "link_drop"       // any: the network link is down (for)
	ActionPowerLoss      = "power_loss"      // any: the power is off (for)
	ActionThermalRunaway = "thermal_runaway" // charger: a battery runs away (slot)
	ActionOverheat       = "overheat"        // charger: a bay cut at 60 °C (slot)
	ActionMainsLoss      = "mains_loss"      // charger: mains lost (optional for)
	ActionMainsRestore   = "mains_restore"   // charger
	ActionBattery        = "battery"         // lock, aed: battery charge (pct)
	ActionPadsExpire     = "pads_expire"     // aed: pads expiry date (date)
	ActionJam            = "jam"             // lock: the bolt jams until recovered
	ActionForceDoor      = "force_door"      // lock: the door is forced
	ActionOpenDoor       = "open_door"       // lock: someone walks out
	ActionCabinetOpen    = "cabinet_open"    // aed
	ActionCabinetClose   = "cabinet_close"   // aed
	ActionSelfTestFail   = "self_test_fail"  // aed: fails until recovered
)

// actionKinds says which kinds can do each action; nil means every kind.
var actionKinds = map[string][]schemas.Kind{
	ActionFault:          {schemas.KindAC},
	ActionRecover:        nil,
	ActionLinkDrop:       nil,
	ActionPowerLoss:      nil,
	ActionThermalRunaway: {schemas.KindCharger},
	ActionOverheat:       {schemas.KindCharger},
	ActionMainsLoss:      {schemas.KindCharger},
	ActionMainsRestore:   {schemas.KindCharger},
	ActionBattery:        {schemas.KindLock, schemas.KindAED},
	ActionPadsExpire:     {schemas.KindAED},
	ActionJam:            {schemas.KindLock},
	ActionForceDoor:      {schemas.KindLock},
	ActionOpenDoor:       {schemas.KindLock},
	ActionCabinetOpen:    {schemas.KindAED},
	ActionCabinetClose:   {schemas.KindAED},
	ActionSelfTestFail:   {schemas.KindAED},
}

// actionArgs lists the arguments each action needs.
var actionArgs = map[string][]string{
	ActionFault:          {"code"},
	ActionLinkDrop:       {"for"},
	ActionPowerLoss:      {"for"},
	ActionThermalRunaway: {"slot"},
	ActionOverheat:       {"slot"},
	ActionBattery:        {"pct"},
	ActionPadsExpire:     {"date"},
}

// Actions lists the actions a scenario may name, sorted.
func Actions() []string {
	out := make([]string, 0, len(actionKinds))
	for a := range actionKinds {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// ErrScenario is wrapped by every error about a scenario file.
var ErrScenario = errors.New("bad scenario")

// ScenarioError lists what is wrong with a scenario, each problem with the
// line it is on.
type ScenarioError struct {
	File     string
	Problems []ScenarioProblem
}

// ScenarioProblem is one thing wrong in a scenario file.
type ScenarioProblem struct {
	Line   int // 0 when the problem is not on one line
	Reason string
}

// Error lists the problems one a line, each as file:line: reason.
func (e *ScenarioError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if p.Line > 0 {
			fmt.Fprintf(&b, "%s:%d: %s", e.File, p.Line, p.Reason)
		} else {
			fmt.Fprintf(&b, "%s: %s", e.File, p.Reason)
		}
	}
	return b.String()
}

// Unwrap lets errors.Is find ErrScenario.
func (e *ScenarioError) Unwrap() error { return ErrScenario }

// add records a problem at line.
func (e *ScenarioError) add(line int, format string, args ...any) {
	e.Problems = append(e.Problems, ScenarioProblem{Line: line, Reason: fmt.Sprintf(format, args...)})
}

//go:embed scenarios/*.yaml
var shipped embed.FS

// Scenarios returns the names of the scenarios shipped with the
// simulators, sorted.
func Scenarios() []string {
	entries, err := fs.ReadDir(shipped, "scenarios")
	if err != nil {
		return nil // the directory is embedded: this does not happen
	}
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return out
}

// LoadScenario reads a scenario: a shipped one by name (see Scenarios), or
// else the file at the path given.
func LoadScenario(nameOrPath string) (*Scenario, error) {
	if b, err := shipped.ReadFile(path.Join("scenarios", nameOrPath+".yaml")); err == nil {
		return ParseScenario(nameOrPath+".yaml", b)
	}
	b, err := os.ReadFile(nameOrPath)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w (shipped ones: %s)", err,
			strings.Join(Scenarios(), ", "))
	}
	return ParseScenario(nameOrPath, b)
}

// scenarioKeys and eventKeys are the keys a scenario file may use.
var (
	scenarioKeys = []string{"name", "description", "start", "weather_offset_c", "events"}
	eventKeys    = []string{"at", "day", "device", "station", "kind", "do", "code", "slot", "for",
		"pct", "date"}
	clockRE = regexp.MustCompile(`^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$`)
)

// ParseScenario reads a scenario from data; file names it in messages. A
// bad file is refused whole with a *ScenarioError naming each problem's
// line and reason.
func ParseScenario(file string, data []byte) (*Scenario, error) {
	e := &ScenarioError{File: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		e.add(yamlErrorLine(err), "%s", yamlErrorReason(err))
		return nil, e
	}
	if len(doc.Content) == 0 {
		e.add(0, "empty file: want a mapping with events")
		return nil, e
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		e.add(root.Line, "want a mapping with name, description, start and events")
		return nil, e
	}

	sc := &Scenario{File: file}
	var events *yaml.Node
	forPairs(root, e, scenarioKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			sc.Name = scalarString(v, e, key)
		case "description":
			sc.Description = scalarString(v, e, key)
		case "start":
			s := scalarString(v, e, key)
			if t, err := ParseTime(s, nil); err != nil {
				e.add(v.Line, "start: %v", err)
			} else {
				sc.Start = t
			}
		case "weather_offset_c":
			if f, ok := scalarFloat(v, e, key); ok {
				if math.Abs(f) > 15 {
					e.add(v.Line, "weather_offset_c %g: want -15 to 15", f)
				}
				sc.WeatherOffsetC = f
			}
		case "events":
			events = v
		}
	})
	switch {
	case events == nil:
		e.add(root.Line, "no events: want a list under events")
	case events.Kind != yaml.SequenceNode:
		e.add(events.Line, "events: want a list")
	default:
		for i, n := range events.Content {
			if ev, ok := parseEvent(n, i+1, e); ok {
				sc.Events = append(sc.Events, ev)
			}
		}
		if len(events.Content) == 0 {
			e.add(events.Line, "events: the list is empty")
		}
	}
	if len(e.Problems) > 0 {
		return nil, e
	}
	return sc, nil
}

// parseEvent reads the n-th event (from 1).
func parseEvent(n *yaml.Node, num int, e *ScenarioError) (ScenarioEvent, bool) {
	before := len(e.Problems)
	ev := ScenarioEvent{Line: n.Line, Clock: -1, Day: 1, isSet: map[string]bool{}}
	if n.Kind != yaml.MappingNode {
		e.add(n.Line, "event %d: want a mapping with at, a target and do", num)
		return ev, false
	}
	forPairs(n, e, eventKeys, func(key string, k, v *yaml.Node) {
		ev.isSet[key] = true
		switch key {
		case "at":
			parseAt(&ev, scalarString(v, e, key), v.Line, e)
		case "day":
			if f, ok := scalarFloat(v, e, key); ok {
				if f != math.Trunc(f) || f < 1 || f > 366 {
					e.add(v.Line, "day %g: want a whole number from 1", f)
				}
				ev.Day = int(f)
			}
		case "device":
			ev.Device = scalarString(v, e, key)
			if !schemas.ValidID(ev.Device) {
				e.add(v.Line, "device %q: not a device id", ev.Device)
			}
		case "station":
			ev.Station = scalarString(v, e, key)
			if !schemas.ValidID(ev.Station) || ev.Station == schemas.AlertsStation {
				e.add(v.Line, "station %q: not a station id", ev.Station)
			}
		case "kind":
			ev.Kind = schemas.Kind(scalarString(v, e, key))
			if !ev.Kind.Valid() {
				e.add(v.Line, "kind %q: want lock, ac, charger or aed", ev.Kind)
			}
		case "do":
			ev.Do = scalarString(v, e, key)
			if _, ok := actionKinds[ev.Do]; !ok {
				e.add(v.Line, "do %q: unknown action; want one of %s", ev.Do,
					strings.Join(Actions(), ", "))
			}
		case "code":
			ev.Code = scalarString(v, e, key)
			if ev.Code == "" || !validCode(ev.Code) {
				e.add(v.Line, "code %q: want 1-32 of A-Z a-z 0-9 _ . -", ev.Code)
			}
		case "slot":
			if f, ok := scalarFloat(v, e, key); ok {
				if f != math.Trunc(f) || f < 1 || f > schemas.MaxSlots {
					e.add(v.Line, "slot %g: want a whole number from 1 to %d", f, schemas.MaxSlots)
				}
				ev.Slot = int(f)
			}
		case "for":
			s := scalarString(v, e, key)
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				e.add(v.Line, "for %q: want a positive duration such as 45m or 1h30m", s)
			}
			ev.For = d
		case "pct":
			if f, ok := scalarFloat(v, e, key); ok {
				if f < 0 || f > 100 {
					e.add(v.Line, "pct %g: want 0 to 100", f)
				}
				ev.Pct = f
			}
		case "date":
			s := scalarString(v, e, key)
			t, err := time.ParseInLocation(padsExpireDateLayout, s, shanghai())
			if err != nil {
				e.add(v.Line, "date %q: want YYYY-MM-DD", s)
			}
			ev.Date = t
		}
	})

	switch {
	case !ev.isSet["at"]:
		e.add(n.Line, "event %d: no at: say when", num)
	case ev.isSet["day"] && ev.Clock < 0:
		e.add(n.Line, "event %d: day goes with a time of day such as at: \"02:00\"", num)
	}
	switch {
	case ev.Device == "" && ev.Station == "":
		e.add(n.Line, "event %d: no target: give device or station", num)
	case ev.Device != "" && ev.Station != "":
		e.add(n.Line, "event %d: give device or station, not both", num)
	case ev.Device != "" && ev.isSet["kind"]:
		e.add(n.Line, "event %d: kind narrows a station; a device has its own", num)
	}
	if !ev.isSet["do"] {
		e.add(n.Line, "event %d: no do: say what happens (%s)", num, strings.Join(Actions(), ", "))
	}
	for _, arg := range actionArgs[ev.Do] {
		if !ev.isSet[arg] {
			e.add(n.Line, "event %d: %s needs %s", num, ev.Do, arg)
		}
	}
	for _, arg := range []string{"code", "slot", "for", "pct", "date"} {
		if ev.isSet[arg] && ev.Do != "" && !slices.Contains(actionArgs[ev.Do], arg) &&
			(arg != "for" || ev.Do != ActionMainsLoss) {
			e.add(n.Line, "event %d: %s takes no %s", num, ev.Do, arg)
		}
	}
	if ev.Kind != "" && ev.Do != "" && actionKinds[ev.Do] != nil &&
		!slices.Contains(actionKinds[ev.Do], ev.Kind) {
		e.add(n.Line, "event %d: a %s cannot %s", num, ev.Kind, ev.Do)
	}
	return ev, len(e.Problems) == before
}

// parseAt reads when an event happens.
func parseAt(ev *ScenarioEvent, s string, line int, e *ScenarioError) {
	switch {
	case strings.HasPrefix(s, "+"):
		d, err := time.ParseDuration(s[1:])
		if err != nil || d < 0 {
			e.add(line, "at %q: want an offset such as +90m or +1h30m", s)
		}
		ev.Offset = d
	case clockRE.MatchString(s):
		m := clockRE.FindStringSubmatch(s)
		h, _ := strconv.Atoi(m[1])
		mi, _ := strconv.Atoi(m[2])
		sec := 0
		if m[3] != "" {
			sec, _ = strconv.Atoi(m[3])
		}
		ev.Clock = time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute +
			time.Duration(sec)*time.Second
	default:
		t, err := ParseTime(s, nil)
		if err != nil {
			e.add(line, "at %q: want HH:MM, +DURATION, or a date and time", s)
		}
		ev.At = t
	}
}

// forPairs calls f for each key of a mapping, refusing unknown and
// repeated keys and keys that are not plain strings.
func forPairs(m *yaml.Node, e *ScenarioError, known []string, f func(key string, k, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := k.Value
		switch {
		case k.Kind != yaml.ScalarNode:
			e.add(k.Line, "a key must be a plain word")
			continue
		case !slices.Contains(known, key):
			e.add(k.Line, "unknown key %q; want one of %s", key, strings.Join(known, ", "))
			continue
		case seen[key]:
			e.add(k.Line, "%s given twice", key)
			continue
		}
		seen[key] = true
		f(key, k, v)
	}
}

// scalarString reads a scalar as a string.
func scalarString(v *yaml.Node, e *ScenarioError, key string) string {
	if v.Kind != yaml.ScalarNode {
		e.add(v.Line, "%s: want a single value", key)
		return ""
	}
	return strings.TrimSpace(v.Value)
}

// scalarFloat reads a scalar as a number.
func scalarFloat(v *yaml.Node, e *ScenarioError, key string) (float64, bool) {
	s := scalarString(v, e, key)
	if v.Kind != yaml.ScalarNode {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		e.add(v.Line, "%s %q: want a number", key, s)
		return 0, false
	}
	return f, true
}

// yamlLineRE finds the line number in a yaml.v3 syntax error.
var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlErrorLine(err error) int {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func yamlErrorReason(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	return yamlLineRE.ReplaceAllString(s, "")
}

// scenarioStep is an event resolved against a fleet and a start: a time
// and the devices it applies to.
type scenarioStep struct {
	at      time.Time
	event   ScenarioEvent
	action  string // the event's, or mains_restore for the end of a mains_loss
	devices []*Device
}

// plan resolves every event of sc against the fleet's devices and the
// scenario's start, in the order they happen, and leaves out the steps
// before from (played by an earlier run). An event naming a device or
// station the fleet lacks, or one no device there can do, is a problem on
// its line.
func (sc *Scenario) plan(start, from time.Time, loc *time.Location, devs []*Device) (
	[]scenarioStep, error) {
	e := &ScenarioError{File: sc.File}
	byStation := map[string][]*Device{}
	byID := map[string]*Device{}
	for _, d := range devs {
		byStation[d.spec.Station] = append(byStation[d.spec.Station], d)
		byID[d.spec.Device] = d
	}

	var steps []scenarioStep
	for i, ev := range sc.Events {
		at := ev.when(start, loc)
		if at.Before(start) {
			e.add(ev.Line, "event %d at %s is before the start %s", i+1,
				at.In(loc).Format(time.DateTime), start.In(loc).Format(time.DateTime))
			continue
		}
		var targets []*Device
		switch {
		case ev.Device != "":
			d, ok := byID[ev.Device]
			if !ok {
				e.add(ev.Line, "event %d: no device %s in this run", i+1, ev.Device)
				continue
			}
			if !canDo(ev.Do, d.spec.Kind) {
				e.add(ev.Line, "event %d: %s is a %s, which cannot %s", i+1, d.spec.Device,
					d.spec.Kind, ev.Do)
				continue
			}
			if err := slotFits(ev, d); err != "" {
				e.add(ev.Line, "event %d: %s", i+1, err)
				continue
			}
			targets = []*Device{d}
		default:
			st, ok := byStation[ev.Station]
			if !ok {
				e.add(ev.Line, "event %d: no station %s in this run", i+1, ev.Station)
				continue
			}
			for _, d := range st {
				if (ev.Kind == "" || d.spec.Kind == ev.Kind) && canDo(ev.Do, d.spec.Kind) {
					targets = append(targets, d)
				}
			}
			if len(targets) == 0 {
				e.add(ev.Line, "event %d: no device at station %s can %s", i+1, ev.Station, ev.Do)
				continue
			}
		}
		steps = append(steps, scenarioStep{at: at, event: ev, action: ev.Do, devices: targets})
		if ev.Do == ActionMainsLoss && ev.For > 0 {
			steps = append(steps, scenarioStep{at: at.Add(ev.For), event: ev,
				action: ActionMainsRestore, devices: targets})
		}
	}
	if len(e.Problems) > 0 {
		return nil, e
	}
	slices.SortStableFunc(steps, func(a, b scenarioStep) int { return a.at.Compare(b.at) })
	past := 0
	for past < len(steps) && steps[past].at.Before(from) {
		past++
	}
	return append(stillHeld(steps[:past], from), steps[past:]...), nil
}

// stillHeld works out what the steps an earlier run played before from
// left in force on each device, and returns the steps that put it back, at
// from, in their order: a fault, jam, failed self-test, runaway or
// overheat not since recovered, mains not since restored, a cabinet not
// since closed, the rest of a power or link cut, the last battery charge
// and pads date set. A resumed run's devices start afresh, and without
// them a fault under way at the stop would end with it. Momentary actions
// (a door forced or opened) are not played again.
func stillHeld(past []scenarioStep, from time.Time) []scenarioStep {
	held := map[*Device][]scenarioStep{}
	var order []*Device
	drop := func(d *Device, actions ...string) {
		held[d] = slices.DeleteFunc(held[d], func(s scenarioStep) bool {
			return slices.Contains(actions, s.action)
		})
	}
	for _, st := range past {
		for _, d := range st.devices {
			if _, seen := held[d]; !seen {
				held[d] = nil
				order = append(order, d)
			}
			one := st
			one.at, one.devices = from, []*Device{d}
			switch st.action {
			case ActionForceDoor, ActionOpenDoor:
				continue
			case ActionRecover:
				drop(d, ActionFault, ActionJam, ActionSelfTestFail, ActionThermalRunaway,
					ActionOverheat, ActionMainsLoss, ActionCabinetOpen)
				continue
			case ActionMainsRestore:
				drop(d, ActionMainsLoss)
				continue
			case ActionCabinetClose:
				drop(d, ActionCabinetOpen)
				continue
			case ActionPowerLoss, ActionLinkDrop:
				end := st.at.Add(st.event.For)
				if !end.After(from) {
					continue
				}
				one.event.For = end.Sub(from)
			case ActionBattery, ActionPadsExpire:
				drop(d, st.action)
			}
			held[d] = append(held[d], one)
		}
	}
	var out []scenarioStep
	for _, d := range order {
		out = append(out, held[d]...)
	}
	return out
}

// when resolves the event's time against the run's start.
func (ev ScenarioEvent) when(start time.Time, loc *time.Location) time.Time {
	switch {
	case !ev.At.IsZero():
		return ev.At
	case ev.Clock >= 0:
		local := start.In(loc)
		y, m, d := local.Date()
		t := time.Date(y, m, d, 0, 0, 0, 0, loc).Add(ev.Clock)
		if t.Before(start) {
			t = time.Date(y, m, d+1, 0, 0, 0, 0, loc).Add(ev.Clock)
		}
		return t.AddDate(0, 0, ev.Day-1)
	}
	return start.Add(ev.Offset)
}

// slotFits checks that a slot an event names exists on a charger.
func slotFits(ev ScenarioEvent, d *Device) string {
	if ev.Slot == 0 {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if m, ok := d.model.(*chargerModel); ok && ev.Slot > len(m.slots) {
		return fmt.Sprintf("%s has %d slots, not %d", d.spec.Device, len(m.slots), ev.Slot)
	}
	return ""
}

// canDo reports whether a device of kind k can do action a.
func canDo(a string, k schemas.Kind) bool {
	kinds, ok := actionKinds[a]
	return ok && (kinds == nil || slices.Contains(kinds, k))
}

// apply carries out a step on one device at the step's time.
func (st scenarioStep) apply(d *Device) error {
	ev, at := st.event, st.at
	switch st.action {
	case ActionPowerLoss:
		return d.PowerCut(ev.For)
	case ActionLinkDrop:
		return d.LinkDown(ev.For)
	}
	return d.injectAt(at, func(now time.Time) ([]schemas.Event, error) {
		switch m := d.model.(type) {
		case *acModel:
			switch st.action {
			case ActionFault:
				return m.setFault(now, ev.Code), nil
			case ActionRecover:
				return m.clear(now), nil
			}
		case *lockModel:
			switch st.action {
			case ActionJam:
				return m.jam(now), nil
			case ActionForceDoor:
				return m.force(now), nil
			case ActionOpenDoor:
				return m.openFromInside(now), nil
			case ActionBattery:
				m.setBattery(ev.Pct)
				return nil, nil
			case ActionRecover:
				return m.clear(now), nil
			}
		case *chargerModel:
			switch st.action {
			case ActionThermalRunaway:
				return m.runaway(now, ev.Slot)
			case ActionOverheat:
				return m.overheat(now, ev.Slot)
			case ActionMainsLoss:
				return m.setMains(now, false), nil
			case ActionMainsRestore:
				return m.setMains(now, true), nil
			case ActionRecover:
				return m.clear(now), nil
			}
		case *aedModel:
			switch st.action {
			case ActionCabinetOpen:
				return m.setCabinet(now, true), nil
			case ActionCabinetClose:
				return m.setCabinet(now, false), nil
			case ActionSelfTestFail:
				return m.failSelfTest(now), nil
			case ActionBattery:
				m.setBattery(ev.Pct)
				return nil, nil
			case ActionPadsExpire:
				m.setPadsExpire(ev.Date)
				return nil, nil
			case ActionRecover:
				return m.clear(now), nil
			}
		}
		return nil, d.wrongKind(st.action)
	})
}
