package controller

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/schemas"
)

// bucketUsage holds a bucket per station whose keys are the start of a UTC
// hour (Unix seconds, 8 bytes big-endian, so they sort by time) and whose
// values are that hour's visits by method.
var bucketUsage = []byte("usage")

// Defaults of UsageOptions.
const (
	DefaultUsageFlushEvery    = 5 * time.Second
	DefaultUsageRetention     = 400 * 24 * time.Hour // a year and a month: year-on-year reports
	DefaultOccupancyWindow    = 30 * time.Minute
	usagePruneEvery           = time.Hour
	maxUsageHourRangeDays     = 31
	maxUsageDayRangeDays      = 400
	occupancySourceTerminal   = "terminal"
	occupancySourceEstimation = "estimate"
)

// ErrUsageRange is returned, wrapped, for a usage query over a period the
// API does not serve.
var ErrUsageRange = errors.New("bad usage period")

// UsageOptions configures Usage. DB is required.
type UsageOptions struct {
	DB *bolt.DB
	// Location is where days start and end; default time.Local.
	Location *time.Location
	// FlushEvery is how often counted visits are written, in one
	// transaction. Default DefaultUsageFlushEvery.
	FlushEvery time.Duration
	// Retention is how long hourly counts are kept. Default
	// DefaultUsageRetention.
	Retention time.Duration
	// OccupancyWindow is how long a visitor is taken to stay when no door
	// terminal counts people, and how old a terminal's count may be.
	// Default DefaultOccupancyWindow.
	OccupancyWindow time.Duration
	Now             func() time.Time
	Logger          *slog.Logger
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Usage counts visits (granted entries) per station, hour and method, in
// memory first and in bbolt in batches, and estimates how many people are
// inside each station now. It is safe for concurrent use.
type Usage struct {
	o      UsageOptions
	log    *slog.Logger
	visits *prometheus.CounterVec

	mu        sync.Mutex // guards the fields below
	pending   map[usageKey]*methodCounts
	recent    map[string][]time.Time // grant times within the window, by station
	occupancy map[string]occupancyReport

	flushMu   sync.Mutex // serialises Flush
	lastPrune time.Time
}

type usageKey struct {
	station string
	hour    int64 // Unix seconds of the UTC hour's start
}

// methodCounts are visits by access method.
type methodCounts struct {
	Face int64 `json:"face"`
	NFC  int64 `json:"nfc"`
	QR   int64 `json:"qr"`
}

func (c *methodCounts) add(o methodCounts) {
	c.Face += o.Face
	c.NFC += o.NFC
	c.QR += o.QR
}

func (c *methodCounts) total() int64 { return c.Face + c.NFC + c.QR }

// occupancyReport is a door terminal's own count of the people inside.
type occupancyReport struct {
	station string
	people  int
	at      time.Time
}

// Occupancy is how many people are inside a station now.
type Occupancy struct {
	People int `json:"people"`
	// Source is "terminal" when a door terminal counts people, else
	// "estimate": the visits of the last OccupancyWindow.
	Source string    `json:"source"`
	At     time.Time `json:"at"`
}

// NewUsage creates the usage bucket and registers the metrics.
func NewUsage(o UsageOptions) (*Usage, error) {
	if o.DB == nil {
		return nil, errors.New("usage needs a db")
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = DefaultUsageFlushEvery
	}
	if o.Retention <= 0 {
		o.Retention = DefaultUsageRetention
	}
	if o.OccupancyWindow <= 0 {
		o.OccupancyWindow = DefaultOccupancyWindow
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	u := &Usage{o: o, log: o.Logger.With("component", "usage"),
		pending: map[usageKey]*methodCounts{}, recent: map[string][]time.Time{},
		occupancy: map[string]occupancyReport{}}
	err := o.DB.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketUsage)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create usage bucket: %w", err)
	}

	u.visits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_visits_total",
		Help: "Granted entries at stations' doors, by access method.",
	}, []string{"method"})
	for _, m := range AccessMethods {
		u.visits.WithLabelValues(m)
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(u.visits); err != nil {
			return nil, fmt.Errorf("register usage metrics: %w", err)
		}
	}
	return u, nil
}

// Visit counts a granted entry at station by method at time at. It only
// touches memory; Run writes the counts.
func (u *Usage) Visit(station, method string, at time.Time) {
	u.visits.WithLabelValues(method).Inc()
	key := usageKey{station: station, hour: at.Truncate(time.Hour).Unix()}

	u.mu.Lock()
	defer u.mu.Unlock()
	c, ok := u.pending[key]
	if !ok {
		c = &methodCounts{}
		u.pending[key] = c
	}
	switch method {
	case schemas.MethodFace:
		c.Face++
	case schemas.MethodNFC:
		c.NFC++
	case schemas.MethodQR:
		c.QR++
	}
	u.recent[station] = append(u.keepRecent(station, at), at)
}

// keepRecent drops the station's grants older than the window. u.mu must
// be held.
func (u *Usage) keepRecent(station string, now time.Time) []time.Time {
	r := u.recent[station]
	i := 0
	for i < len(r) && now.Sub(r[i]) > u.o.OccupancyWindow {
		i++
	}
	return r[i:]
}

// Observe follows door terminals' own counts of people inside. Give it to
// Ingest.Observe.
func (u *Usage) Observe(obs Observation) {
	if obs.Telem == nil || obs.Telem.Lock == nil || obs.Telem.Lock.Occupancy == nil {
		return
	}
	u.mu.Lock()
	u.occupancy[obs.Device.ID] = occupancyReport{station: obs.Device.Station,
		people: *obs.Telem.Lock.Occupancy, at: obs.At}
	u.mu.Unlock()
}

// Occupancy returns how many people are inside station now: the latest
// count of one of its door terminals, when one counted within the window;
// else the visits of the last window, since without an exit sensor nobody
// is seen leaving.
func (u *Usage) Occupancy(station string) Occupancy {
	now := u.o.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	var best *occupancyReport
	for _, rep := range u.occupancy {
		if rep.station == station && now.Sub(rep.at) <= u.o.OccupancyWindow &&
			(best == nil || rep.at.After(best.at)) {
			best = &rep
		}
	}
	if best != nil {
		return Occupancy{People: best.people, Source: occupancySourceTerminal, At: best.at}
	}
	recent := u.keepRecent(station, now)
	u.recent[station] = recent
	if len(recent) == 0 {
		delete(u.recent, station)
	}
	return Occupancy{People: len(recent), Source: occupancySourceEstimation, At: now}
}

// Run writes counted visits every FlushEvery until ctx ends, then once
// more, and prunes counts past the retention every hour.
func (u *Usage) Run(ctx context.Context) error {
	tick := time.NewTicker(u.o.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return u.Flush()
		case <-tick.C:
			if err := u.Flush(); err != nil {
				u.log.Error("usage not written", "err", err)
			}
		}
	}
}

// Flush writes the counted visits in one transaction, adding them to what
// is stored, and prunes old hours when an hour has passed since it last
// did.
func (u *Usage) Flush() error {
	u.flushMu.Lock()
	defer u.flushMu.Unlock()

	u.mu.Lock()
	batch := u.pending
	u.pending = map[usageKey]*methodCounts{}
	u.mu.Unlock()

	now := u.o.Now()
	prune := now.Sub(u.lastPrune) >= usagePruneEvery
	if len(batch) == 0 && !prune {
		return nil
	}
	cutoff := now.Add(-u.o.Retention).Truncate(time.Hour).Unix()
	err := u.o.DB.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketUsage)
		for key, c := range batch {
			b, err := root.CreateBucketIfNotExists([]byte(key.station))
			if err != nil {
				return err
			}
			k := hourKey(key.hour)
			var stored methodCounts
			if v := b.Get(k); v != nil {
				if err := json.Unmarshal(v, &stored); err != nil {
					return fmt.Errorf("usage of %s at %d: %w", key.station, key.hour, err)
				}
			}
			stored.add(*c)
			buf, _ := json.Marshal(stored)
			if err := b.Put(k, buf); err != nil {
				return err
			}
		}
		if prune {
			return pruneUsage(root, cutoff)
		}
		return nil
	})
	if err != nil {
		// Keep the counts for the next flush.
		u.mu.Lock()
		for key, c := range batch {
			if p, ok := u.pending[key]; ok {
				p.add(*c)
			} else {
				u.pending[key] = c
			}
		}
		u.mu.Unlock()
		return fmt.Errorf("write usage: %w", err)
	}
	if prune {
		u.lastPrune = now
	}
	return nil
}

// pruneUsage deletes the hours before cutoff of every station.
func pruneUsage(root *bolt.Bucket, cutoff int64) error {
	var stations [][]byte
	err := root.ForEachBucket(func(k []byte) error {
		stations = append(stations, append([]byte(nil), k...))
		return nil
	})
	if err != nil {
		return err
	}
	end := hourKey(cutoff)
	for _, st := range stations {
		c := root.Bucket(st).Cursor()
		for k, _ := c.First(); k != nil && string(k) < string(end); k, _ = c.Next() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
	}
	return nil
}

func hourKey(unix int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(unix)) }

// Usage periods.
const (
	ByHour = "hour"
	ByDay  = "day"
)

// UsageRow is the visits of one station in one hour or day.
type UsageRow struct {
	Station string    `json:"station"`
	Start   time.Time `json:"start"` // in the usage location
	Visits  int64     `json:"visits"`
	Face    int64     `json:"face"`
	NFC     int64     `json:"nfc"`
	QR      int64     `json:"qr"`
}

// UsageReport answers a usage query.
type UsageReport struct {
	From     time.Time  `json:"from"` // inclusive
	To       time.Time  `json:"to"`   // exclusive
	By       string     `json:"by"`
	TimeZone string     `json:"tz"`
	Rows     []UsageRow `json:"rows"` // periods with visits, by station and time
	Total    UsageRow   `json:"total"`
}

// Report returns the visits of stations between from and to (exclusive),
// per hour or per day of the usage location. Periods without visits are
// left out. Hour rows cover at most 31 days, day rows 400.
func (u *Usage) Report(stations []string, from, to time.Time, by string) (UsageReport, error) {
	switch {
	case by != ByHour && by != ByDay:
		return UsageReport{}, fmt.Errorf("%w: by %q: want hour or day", ErrUsageRange, by)
	case !to.After(from):
		return UsageReport{}, fmt.Errorf("%w: the end is not after the start", ErrUsageRange)
	case by == ByHour && to.Sub(from) > maxUsageHourRangeDays*24*time.Hour:
		return UsageReport{}, fmt.Errorf("%w: hourly rows cover at most %d days",
			ErrUsageRange, maxUsageHourRangeDays)
	case to.Sub(from) > maxUsageDayRangeDays*24*time.Hour:
		return UsageReport{}, fmt.Errorf("%w: at most %d days", ErrUsageRange, maxUsageDayRangeDays)
	}
	if err := u.Flush(); err != nil {
		return UsageReport{}, err
	}

	loc := u.o.Location
	rep := UsageReport{From: from.In(loc), To: to.In(loc), By: by, TimeZone: loc.String(),
		Rows: []UsageRow{}, Total: UsageRow{Start: from.In(loc)}}
	first, end := hourKey(from.Truncate(time.Hour).Unix()), hourKey(to.Unix())
	err := u.o.DB.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketUsage)
		for _, st := range stations {
			b := root.Bucket([]byte(st))
			if b == nil {
				continue
			}
			var row *UsageRow
			c := b.Cursor()
			for k, v := c.Seek(first); k != nil && string(k) < string(end); k, v = c.Next() {
				start := time.Unix(int64(binary.BigEndian.Uint64(k)), 0).In(loc)
				if start.Before(from) {
					continue // the hour of from began before it
				}
				if by == ByDay {
					start = time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, loc)
				}
				var mc methodCounts
				if err := json.Unmarshal(v, &mc); err != nil {
					return fmt.Errorf("usage of %s: %w", st, err)
				}
				if row == nil || !row.Start.Equal(start) {
					rep.Rows = append(rep.Rows, UsageRow{Station: st, Start: start})
					row = &rep.Rows[len(rep.Rows)-1]
				}
				row.add(mc)
				rep.Total.add(mc)
			}
		}
		return nil
	})
	if err != nil {
		return UsageReport{}, fmt.Errorf("read usage: %w", err)
	}
	slices.SortStableFunc(rep.Rows, func(a, b UsageRow) int {
		if n := strings.Compare(a.Station, b.Station); n != 0 {
			return n
		}
		return a.Start.Compare(b.Start)
	})
	return rep, nil
}

func (r *UsageRow) add(c methodCounts) {
	r.Face += c.Face
	r.NFC += c.NFC
	r.QR += c.QR
	r.Visits += c.total()
}
