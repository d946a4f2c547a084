package controller

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

var bucketAllowLists = []byte("allowlists")

// Defaults of AllowListOptions.
const (
	DefaultAllowListEvery = time.Second
	DefaultStaleAfter     = time.Hour
)

// historyLen is how many recent versions of a station's list keep their
// publication time, to tell how long a terminal has been behind.
const historyLen = 32

// AllowListOptions configures AllowLists. DB, Bus, Registry, Credentials
// and Rules are required.
type AllowListOptions struct {
	DB          *bolt.DB
	Bus         Bus
	Registry    *devices.Registry
	Credentials *Credentials
	Rules       *AccessRules
	// Every is how often changes are gathered into new lists and new
	// terminals are sent theirs; a burst of changes within it makes one
	// version. Default DefaultAllowListEvery.
	Every time.Duration
	// StaleAfter is how long a terminal may lack a change of its list
	// before it counts as stale. Default DefaultStaleAfter.
	StaleAfter time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// AllowLists keeps a versioned allow-list per station: the hashes of the
// credentials the station admits (see Access for the rule). When a list
// changes its version grows and it is published, retained, on the
// access/list topic of each of the station's door terminals. Terminals
// report the version they hold in their telemetry; one that is behind by a
// change older than StaleAfter is stale.
type AllowLists struct {
	o   AllowListOptions
	log *slog.Logger

	publishes *prometheus.CounterVec
	stale     prometheus.GaugeFunc

	mu        sync.Mutex // guards the maps below
	lists     map[string]*stationList
	terminals map[string]*terminalReport
	sent      map[string]int64 // version last published to each terminal, since start

	dirty bool // credentials or rules changed since the last refresh; only Run touches it
	// What the last refresh saw, so that one with nothing to do costs no
	// copy of the registry: its generation, and whether every terminal
	// then had its list. Only Run touches them.
	seenGen uint64
	settled bool
}

// stationList is what is kept of a station's list: not its entries, which
// are rebuilt from the credentials when needed.
type stationList struct {
	Version   int64          `json:"version"`
	Digest    []byte         `json:"digest"` // SHA-256 of the entries and methods
	Entries   int            `json:"entries"`
	ChangedAt time.Time      `json:"changed_at"`
	History   []versionStamp `json:"history"` // the latest versions, oldest first
}

type versionStamp struct {
	Version int64     `json:"version"`
	At      time.Time `json:"at"`
}

// terminalReport is the allow-list version a terminal last reported.
type terminalReport struct {
	station string
	version int64
	at      time.Time
}

// AllowListStatus is the state of a station's list and its terminals.
type AllowListStatus struct {
	Version   int64            `json:"version"`
	Entries   int              `json:"entries"`
	ChangedAt time.Time        `json:"changed_at"`
	Terminals []TerminalStatus `json:"terminals"`
}

// TerminalStatus is what a door terminal holds of its station's list.
type TerminalStatus struct {
	Device  string `json:"device"`
	Station string `json:"station"`
	// Reported is the version it last reported; nil when it never did
	// (then it cannot be judged stale).
	Reported   *int64    `json:"reported_version,omitempty"`
	ReportedAt time.Time `json:"reported_at,omitzero"`
	// BehindSince is when the first version it lacks was published.
	BehindSince time.Time `json:"behind_since,omitzero"`
	Stale       bool      `json:"stale"`
}

// NewAllowLists loads the stations' list versions and registers metrics.
func NewAllowLists(o AllowListOptions) (*AllowLists, error) {
	if o.DB == nil || o.Bus == nil || o.Registry == nil || o.Credentials == nil || o.Rules == nil {
		return nil, errors.New("allow-lists need a db, a bus, a registry, credentials and rules")
	}
	if o.Every <= 0 {
		o.Every = DefaultAllowListEvery
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	al := &AllowLists{o: o, log: o.Logger.With("component", "allowlists"),
		lists: map[string]*stationList{}, terminals: map[string]*terminalReport{},
		sent: map[string]int64{}}
	err := o.DB.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAllowLists)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			l := new(stationList)
			if err := json.Unmarshal(v, l); err != nil {
				return fmt.Errorf("allow-list of %s: %w", k, err)
			}
			al.lists[string(k)] = l
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load allow-lists: %w", err)
	}

	al.publishes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_allowlist_publishes_total",
		Help: "Allow-lists published to door terminals, by outcome (ok, error).",
	}, []string{"result"})
	al.publishes.WithLabelValues("ok")
	al.publishes.WithLabelValues("error")
	al.stale = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "waystation_allowlist_stale_terminals",
		Help: "Door terminals whose allow-list lacks a change older than the stale limit.",
	}, func() float64 { return float64(al.StaleCount()) })
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{al.publishes, al.stale} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register allow-list metrics: %w", err)
			}
		}
	}
	return al, nil
}

// Run builds and publishes the lists now, then again whenever credentials
// or rules changed, every Every, until ctx ends.
func (al *AllowLists) Run(ctx context.Context) error {
	al.dirty = true
	tick := time.NewTicker(al.o.Every)
	defer tick.Stop()
	for {
		if err := al.refresh(); err != nil {
			al.log.Error("allow-lists not refreshed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		// Changes wait for the tick, so a burst of them makes one version.
		select {
		case <-al.o.Credentials.Changes():
			al.dirty = true
		default:
		}
		select {
		case <-al.o.Rules.Changes():
			al.dirty = true
		default:
		}
	}
}

// Observe follows the versions door terminals report. Give it to
// Ingest.Observe.
func (al *AllowLists) Observe(obs Observation) {
	if obs.Telem == nil || obs.Telem.Lock == nil || obs.Telem.Lock.AllowlistVersion == nil {
		return
	}
	al.mu.Lock()
	al.terminals[obs.Device.ID] = &terminalReport{station: obs.Device.Station,
		version: *obs.Telem.Lock.AllowlistVersion, at: obs.At}
	al.mu.Unlock()
}

// refresh rebuilds the lists when something changed, and publishes the
// current list to every terminal that has not been sent it since start.
// With no change of credentials, rules or registry since a refresh that
// left every terminal served, it returns at once.
func (al *AllowLists) refresh() (err error) {
	gen := al.o.Registry.Generation() // before the copies below
	if !al.dirty && al.settled && gen == al.seenGen {
		return nil
	}
	defer func() { al.seenGen, al.settled = gen, err == nil }()

	stations := al.o.Registry.Stations()
	locks := map[string][]string{}
	for _, d := range al.o.Registry.Devices() {
		if d.Kind == schemas.KindLock {
			locks[d.Station] = append(locks[d.Station], d.ID)
		}
	}

	al.mu.Lock()
	work := al.dirty
	for _, st := range stations {
		l, ok := al.lists[st.ID]
		if !ok {
			work = true
			break
		}
		for _, dev := range locks[st.ID] {
			if al.sent[dev] != l.Version {
				work = true
			}
		}
	}
	al.mu.Unlock()
	if !work {
		return nil
	}
	al.dirty = false

	// Entries by organisation, and all of them, each sorted.
	byOrg := map[string][]string{}
	var all []string
	for _, c := range al.o.Credentials.List(Credential.Active) {
		byOrg[c.Org] = append(byOrg[c.Org], c.Hash)
		all = append(all, c.Hash)
	}
	for _, hs := range byOrg {
		sort.Strings(hs)
	}
	sort.Strings(all)

	now := al.o.Now().UTC()
	changed := map[string]*stationList{}
	var errs []error
	for _, st := range stations {
		rules := al.o.Rules.Get(st.ID, st.Org)
		entries := all
		if !rules.OpenToAll {
			entries = byOrg[st.Org]
			if st.Org == "" {
				entries = nil
			}
		}
		digest := listDigest(entries, rules.Methods)

		al.mu.Lock()
		l, ok := al.lists[st.ID]
		if !ok || !slices.Equal(l.Digest, digest) {
			next := &stationList{Version: 1, Digest: digest, Entries: len(entries), ChangedAt: now}
			if ok {
				next.Version = l.Version + 1
				next.History = append(next.History, l.History...)
			}
			next.History = append(next.History, versionStamp{Version: next.Version, At: now})
			if len(next.History) > historyLen {
				next.History = next.History[len(next.History)-historyLen:]
			}
			al.lists[st.ID], l = next, next
			changed[st.ID] = next
		}
		var pending []string
		for _, dev := range locks[st.ID] {
			if al.sent[dev] != l.Version {
				pending = append(pending, dev)
			}
		}
		version := l.Version
		al.mu.Unlock()

		if len(pending) > 0 {
			errs = append(errs, al.publish(st.ID, pending, version, entries, rules.Methods))
		}
	}
	if len(changed) > 0 {
		errs = append(errs, al.store(changed))
		al.log.Debug("allow-lists changed", "stations", len(changed))
	}
	return errors.Join(errs...)
}

// publish sends version of a station's list to its terminals, retained.
func (al *AllowLists) publish(station string, terminals []string, version int64, entries,
	methods []string) error {
	if entries == nil {
		entries = []string{}
	}
	buf, err := json.Marshal(schemas.AccessList{Meta: schemas.Meta{TS: al.o.Now().UnixMilli()},
		Version: version, Entries: entries, Methods: methods})
	if err != nil {
		return err
	}
	var errs []error
	for _, dev := range terminals {
		topic := schemas.DeviceTopic(station, dev, schemas.ChannelAccessList)
		if err := al.o.Bus.Publish(topic, 1, true, buf); err != nil {
			al.publishes.WithLabelValues("error").Inc()
			errs = append(errs, fmt.Errorf("publish allow-list of %s: %w", dev, err))
			continue
		}
		al.publishes.WithLabelValues("ok").Inc()
		al.mu.Lock()
		al.sent[dev] = version
		al.mu.Unlock()
	}
	return errors.Join(errs...)
}

// store writes the changed lists' versions in one transaction.
func (al *AllowLists) store(changed map[string]*stationList) error {
	err := al.o.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAllowLists)
		for id, l := range changed {
			buf, err := json.Marshal(l)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(id), buf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store allow-list versions: %w", err)
	}
	return nil
}

// listDigest fingerprints a list: its sorted entries and its methods.
func listDigest(entries, methods []string) []byte {
	h := sha256.New()
	for _, e := range entries {
		h.Write([]byte(e))
		h.Write([]byte{'\n'})
	}
	h.Write([]byte{0})
	for _, m := range methods {
		h.Write([]byte(m))
		h.Write([]byte{'\n'})
	}
	return h.Sum(nil)
}

// Status returns the state of a station's list and of its terminals; false
// when the station has no list yet.
func (al *AllowLists) Status(station string) (AllowListStatus, bool) {
	var locks []string
	for _, d := range al.o.Registry.Devices() {
		if d.Station == station && d.Kind == schemas.KindLock {
			locks = append(locks, d.ID)
		}
	}
	now := al.o.Now()

	al.mu.Lock()
	defer al.mu.Unlock()
	l, ok := al.lists[station]
	if !ok {
		return AllowListStatus{}, false
	}
	s := AllowListStatus{Version: l.Version, Entries: l.Entries, ChangedAt: l.ChangedAt,
		Terminals: []TerminalStatus{}}
	for _, dev := range locks {
		s.Terminals = append(s.Terminals, al.terminalStatus(dev, station, l, now))
	}
	return s, true
}

// StaleTerminals returns every stale terminal, by station and device.
func (al *AllowLists) StaleTerminals() []TerminalStatus {
	now := al.o.Now()
	al.mu.Lock()
	defer al.mu.Unlock()
	var out []TerminalStatus
	for dev, rep := range al.terminals {
		if l, ok := al.lists[rep.station]; ok {
			if ts := al.terminalStatus(dev, rep.station, l, now); ts.Stale {
				out = append(out, ts)
			}
		}
	}
	slices.SortFunc(out, func(a, b TerminalStatus) int {
		if n := strings.Compare(a.Station, b.Station); n != 0 {
			return n
		}
		return strings.Compare(a.Device, b.Device)
	})
	return out
}

// StaleCount counts the stale terminals.
func (al *AllowLists) StaleCount() int { return len(al.StaleTerminals()) }

// terminalStatus judges one terminal. al.mu must be held.
func (al *AllowLists) terminalStatus(dev, station string, l *stationList,
	now time.Time) TerminalStatus {
	ts := TerminalStatus{Device: dev, Station: station}
	rep, ok := al.terminals[dev]
	if !ok || rep.station != station {
		return ts
	}
	v := rep.version
	ts.Reported, ts.ReportedAt = &v, rep.at
	if v >= l.Version {
		return ts
	}
	// When did the first version it lacks come out? Versions older than the
	// history count from its oldest entry, which errs towards "not yet".
	ts.BehindSince = l.ChangedAt
	for _, h := range l.History {
		if h.Version > v {
			ts.BehindSince = h.At
			break
		}
	}
	ts.Stale = now.Sub(ts.BehindSince) > al.o.StaleAfter
	return ts
}
