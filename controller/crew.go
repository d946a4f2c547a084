package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// Crew is a team of outdoor workers (a sanitation team, say) that changes
// shift at fixed times and rests at some stations. Its shift-change times
// are wall-clock times of its time zone.
//
// Which times apply on a date: an exception for that exact date, else a
// yearly exception (month and day), else the first season in file order
// whose range holds the date, else the weekly timetable. An exception with
// no times means no shift change that day (a holiday).
type Crew struct {
	ID       string   `json:"id"`
	Name     string   `json:"name,omitempty"`
	TimeZone string   `json:"time_zone"`
	Stations []string `json:"stations"`
	// Week gives the shift-change times ("HH:MM") of each weekday, keyed
	// mon, tue, wed, thu, fri, sat, sun. A day not given has none.
	Week       Week        `json:"week"`
	Seasons    []Season    `json:"seasons,omitempty"`
	Exceptions []Exception `json:"exceptions,omitempty"`
	Updated    time.Time   `json:"updated,omitzero"`
}

// Week is a weekly timetable: shift-change times by weekday (mon ... sun).
type Week map[string][]string

// Season is a timetable for a range of dates, both included: "MM-DD"
// bounds recur every year (and may wrap over the new year, 11-15 to
// 03-15); "YYYY-MM-DD" bounds are one range.
type Season struct {
	Name string `json:"name,omitempty"`
	From string `json:"from"`
	To   string `json:"to"`
	Week Week   `json:"week"`
}

// Exception replaces the timetable of one date ("YYYY-MM-DD") or of one
// day every year ("MM-DD"). No times means no shift change.
type Exception struct {
	Date   string   `json:"date"`
	Shifts []string `json:"shifts"`
	Note   string   `json:"note,omitempty"`
}

// weekdays are the keys of a Week, indexed by time.Weekday.
var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// Location loads the crew's time zone.
func (c Crew) Location() (*time.Location, error) { return time.LoadLocation(c.TimeZone) }

// ShiftsOn returns the shift-change times ("HH:MM", ascending) that apply
// on the crew's local date y-m-d, and which part of the timetable gave
// them ("week", "season NAME", "exception NOTE").
func (c Crew) ShiftsOn(y int, m time.Month, d int) ([]string, string) {
	full := fmt.Sprintf("%04d-%02d-%02d", y, m, d)
	md := full[5:]
	for _, e := range c.Exceptions {
		if e.Date == full {
			return e.Shifts, exceptionSource(e)
		}
	}
	for _, e := range c.Exceptions {
		if e.Date == md {
			return e.Shifts, exceptionSource(e)
		}
	}
	wd := weekdays[time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Weekday()]
	for _, s := range c.Seasons {
		if s.holds(full) {
			name := s.Name
			if name == "" {
				name = s.From + ".." + s.To
			}
			return s.Week[wd], "season " + name
		}
	}
	return c.Week[wd], "week"
}

func exceptionSource(e Exception) string {
	if e.Note != "" {
		return "exception " + e.Date + " (" + e.Note + ")"
	}
	return "exception " + e.Date
}

// holds reports whether the season covers date (YYYY-MM-DD).
func (s Season) holds(date string) bool {
	if len(s.From) == len("2006-01-02") {
		return s.From <= date && date <= s.To
	}
	md := date[5:]
	if s.From <= s.To {
		return s.From <= md && md <= s.To
	}
	return md >= s.From || md <= s.To // wraps over the new year
}

// ClimatePolicy says when a station's AC runs before a shift change: cool
// when the outdoor temperature is at or above CoolAtC, to CoolToC; heat at
// or below HeatAtC, to HeatToC; and keep running RestMin minutes after the
// shift change (longer while people are inside).
type ClimatePolicy struct {
	CoolAtC float64 `json:"cool_at_c"`
	CoolToC float64 `json:"cool_to_c"`
	HeatAtC float64 `json:"heat_at_c"`
	HeatToC float64 `json:"heat_to_c"`
	RestMin int     `json:"rest_min"`
	// Off, for one station, keeps the planner away from its ACs.
	Off bool `json:"off,omitempty"`
}

// DefaultClimatePolicy is the county-wide policy until a timetable file
// sets another: public buildings cool to no lower than 26 °C and heat to
// no higher than 20 °C; a rest after a shift change takes about 45
// minutes.
var DefaultClimatePolicy = ClimatePolicy{CoolAtC: 30, CoolToC: 26, HeatAtC: 5, HeatToC: 18,
	RestMin: 45}

// PolicyChange sets some fields of a policy; nil fields keep theirs.
type PolicyChange struct {
	CoolAtC *float64 `json:"cool_at_c,omitempty"`
	CoolToC *float64 `json:"cool_to_c,omitempty"`
	HeatAtC *float64 `json:"heat_at_c,omitempty"`
	HeatToC *float64 `json:"heat_to_c,omitempty"`
	RestMin *int     `json:"rest_min,omitempty"`
	Off     *bool    `json:"off,omitempty"`
}

// apply returns p with the change's fields set.
func (c PolicyChange) apply(p ClimatePolicy) ClimatePolicy {
	if c.CoolAtC != nil {
		p.CoolAtC = *c.CoolAtC
	}
	if c.CoolToC != nil {
		p.CoolToC = *c.CoolToC
	}
	if c.HeatAtC != nil {
		p.HeatAtC = *c.HeatAtC
	}
	if c.HeatToC != nil {
		p.HeatToC = *c.HeatToC
	}
	if c.RestMin != nil {
		p.RestMin = *c.RestMin
	}
	if c.Off != nil {
		p.Off = *c.Off
	}
	return p
}

// check reports what makes a policy unusable.
func (p ClimatePolicy) check() error {
	switch {
	case p.CoolToC < schemas.MinSetpointC || p.CoolToC > schemas.MaxSetpointC:
		return fmt.Errorf("cool_to_c %g: want %d to %d °C", p.CoolToC, schemas.MinSetpointC,
			schemas.MaxSetpointC)
	case p.HeatToC < schemas.MinSetpointC || p.HeatToC > schemas.MaxSetpointC:
		return fmt.Errorf("heat_to_c %g: want %d to %d °C", p.HeatToC, schemas.MinSetpointC,
			schemas.MaxSetpointC)
	case p.HeatAtC >= p.CoolAtC:
		return fmt.Errorf("heat_at_c %g must be below cool_at_c %g", p.HeatAtC, p.CoolAtC)
	case p.CoolAtC < -50 || p.CoolAtC > 60 || p.HeatAtC < -50 || p.HeatAtC > 60:
		return errors.New("cool_at_c and heat_at_c: want outdoor temperatures of -50 to 60 °C")
	case p.RestMin < 0 || p.RestMin > 240:
		return fmt.Errorf("rest_min %d: want 0 to 240 minutes", p.RestMin)
	}
	return nil
}

// Policies are the county-wide climate policy and each station's changes
// to it.
type Policies struct {
	Defaults ClimatePolicy           `json:"defaults"`
	Stations map[string]PolicyChange `json:"stations,omitempty"`
}

// For returns the policy of station.
func (p Policies) For(station string) ClimatePolicy {
	if c, ok := p.Stations[station]; ok {
		return c.apply(p.Defaults)
	}
	return p.Defaults
}

// Timetable is what a crews file holds: crews, and optionally changes to
// the county-wide policy and to stations' policies.
type Timetable struct {
	Defaults *PolicyChange           `json:"defaults,omitempty"`
	Stations map[string]PolicyChange `json:"stations,omitempty"`
	Crews    []Crew                  `json:"crews"`
}

// Buckets of the crews store.
var (
	bucketCrews    = []byte("crews")
	bucketPolicies = []byte("climate_policies")
	keyDefaults    = []byte("defaults")
)

// ErrNoCrew is returned for a crew id that is not stored.
var ErrNoCrew = errors.New("no such crew")

// Crews keeps crews and climate policies in bbolt and in memory. It is safe
// for concurrent use.
type Crews struct {
	db  *bolt.DB
	now func() time.Time

	mu       sync.RWMutex // guards crews, policies and version
	crews    map[string]Crew
	policies Policies
	version  uint64 // grows with every change, so the planner sees one
}

// NewCrews loads the stored crews and policies. now stamps changes;
// nil means time.Now.
func NewCrews(db *bolt.DB, now func() time.Time) (*Crews, error) {
	if now == nil {
		now = time.Now
	}
	c := &Crews{db: db, now: now, crews: map[string]Crew{},
		policies: Policies{Defaults: DefaultClimatePolicy, Stations: map[string]PolicyChange{}}}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCrews)
		if err != nil {
			return err
		}
		if err := b.ForEach(func(k, v []byte) error {
			var cr Crew
			if err := json.Unmarshal(v, &cr); err != nil {
				return fmt.Errorf("crew %s: %w", k, err)
			}
			c.crews[cr.ID] = cr
			return nil
		}); err != nil {
			return err
		}
		pb, err := tx.CreateBucketIfNotExists(bucketPolicies)
		if err != nil {
			return err
		}
		return pb.ForEach(func(k, v []byte) error {
			if string(k) == string(keyDefaults) {
				return json.Unmarshal(v, &c.policies.Defaults)
			}
			var pc PolicyChange
			if err := json.Unmarshal(v, &pc); err != nil {
				return fmt.Errorf("policy of %s: %w", k, err)
			}
			c.policies.Stations[string(k)] = pc
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load crews: %w", err)
	}
	return c, nil
}

// Import stores a timetable in one transaction: its crews replace stored
// crews of the same id, its policy changes apply over the stored ones.
// The timetable must come from ParseTimetable.
func (c *Crews) Import(t Timetable) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UTC().Truncate(time.Second)

	pol := Policies{Defaults: c.policies.Defaults, Stations: copyPolicyChanges(c.policies.Stations)}
	if t.Defaults != nil {
		pol.Defaults = t.Defaults.apply(pol.Defaults)
	}
	for st, ch := range t.Stations {
		pol.Stations[st] = mergeChange(pol.Stations[st], ch)
	}
	if err := pol.Defaults.check(); err != nil {
		return fmt.Errorf("%w: defaults: %v", devices.ErrInvalid, err)
	}
	for st := range t.Stations {
		if err := pol.For(st).check(); err != nil {
			return fmt.Errorf("%w: policy of station %s: %v", devices.ErrInvalid, st, err)
		}
	}

	crews := make([]Crew, len(t.Crews))
	err := c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCrews)
		for i, cr := range t.Crews {
			cr.Updated = now
			crews[i] = cr
			buf, err := json.Marshal(cr)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(cr.ID), buf); err != nil {
				return err
			}
		}
		pb := tx.Bucket(bucketPolicies)
		buf, err := json.Marshal(pol.Defaults)
		if err != nil {
			return err
		}
		if err := pb.Put(keyDefaults, buf); err != nil {
			return err
		}
		for st := range t.Stations {
			buf, err := json.Marshal(pol.Stations[st])
			if err != nil {
				return err
			}
			if err := pb.Put([]byte(st), buf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store crews: %w", err)
	}
	for _, cr := range crews {
		c.crews[cr.ID] = cr
	}
	c.policies = pol
	c.version++
	return nil
}

func copyPolicyChanges(m map[string]PolicyChange) map[string]PolicyChange {
	out := make(map[string]PolicyChange, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// mergeChange sets the fields of ch over old.
func mergeChange(old, ch PolicyChange) PolicyChange {
	if ch.CoolAtC != nil {
		old.CoolAtC = ch.CoolAtC
	}
	if ch.CoolToC != nil {
		old.CoolToC = ch.CoolToC
	}
	if ch.HeatAtC != nil {
		old.HeatAtC = ch.HeatAtC
	}
	if ch.HeatToC != nil {
		old.HeatToC = ch.HeatToC
	}
	if ch.RestMin != nil {
		old.RestMin = ch.RestMin
	}
	if ch.Off != nil {
		old.Off = ch.Off
	}
	return old
}

// Delete removes a crew; its future runs are no longer planned.
func (c *Crews) Delete(id string) (Crew, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cr, ok := c.crews[id]
	if !ok {
		return Crew{}, fmt.Errorf("%w: %q", ErrNoCrew, id)
	}
	err := c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketCrews).Delete([]byte(id)) })
	if err != nil {
		return Crew{}, fmt.Errorf("delete crew: %w", err)
	}
	delete(c.crews, id)
	c.version++
	return cr, nil
}

// Get returns one crew.
func (c *Crews) Get(id string) (Crew, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cr, ok := c.crews[id]
	return cr, ok
}

// List returns every crew, by id.
func (c *Crews) List() []Crew {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Crew, 0, len(c.crews))
	for _, cr := range c.crews {
		out = append(out, cr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Policies returns the county-wide policy and the stations' changes.
func (c *Crews) Policies() Policies {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return Policies{Defaults: c.policies.Defaults, Stations: copyPolicyChanges(c.policies.Stations)}
}

// Policy returns the climate policy of one station.
func (c *Crews) Policy(station string) ClimatePolicy {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.policies.For(station)
}

// snapshot returns the crews and policies and their version, for the
// planner.
func (c *Crews) snapshot() ([]Crew, Policies, uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	list := make([]Crew, 0, len(c.crews))
	for _, cr := range c.crews {
		list = append(list, cr)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	return list, Policies{Defaults: c.policies.Defaults, Stations: copyPolicyChanges(c.policies.Stations)},
		c.version
}

// servesAny reports whether the crew rests at one of stations.
func (c Crew) servesAny(stations ...string) bool {
	for _, s := range stations {
		if slices.Contains(c.Stations, s) {
			return true
		}
	}
	return false
}

// shiftClock reads "HH:MM".
func shiftClock(s string) (h, m int, ok bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, 0, false
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, 0, false
		}
	}
	h = int(s[0]-'0')*10 + int(s[1]-'0')
	m = int(s[3]-'0')*10 + int(s[4]-'0')
	return h, m, h < 24 && m < 60
}

// DailyWeek is a weekly timetable with the same shift-change times every
// day.
func DailyWeek(times ...string) Week {
	w := Week{}
	for _, d := range weekdays {
		w[d] = append([]string(nil), times...)
	}
	return w
}
