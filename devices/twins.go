package devices

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/internal/record"
	"github.com/waystation/waystation/schemas"
)

var bucketTwins = []byte("twins")

// Twin is the platform's picture of one device.
type Twin struct {
	Device  string       `json:"device"`
	Station string       `json:"station"`
	Kind    schemas.Kind `json:"kind"`

	Online         bool      `json:"online"`
	LastSeen       time.Time `json:"last_seen,omitzero"`       // platform clock
	ConnectedSince time.Time `json:"connected_since,omitzero"` // platform clock
	OfflineSince   time.Time `json:"offline_since,omitzero"`
	// Conn is the connection id of the device's latest online status.
	Conn      string `json:"conn,omitempty"`
	Firmware  string `json:"firmware,omitempty"`
	Model     string `json:"model,omitempty"`
	IntervalS int    `json:"interval_s,omitempty"`

	// State is the device's last reported telemetry, as the contract encodes it.
	State   json.RawMessage `json:"state,omitempty"`
	StateAt time.Time       `json:"state_at,omitzero"`
	Seq     uint64          `json:"seq,omitempty"`
	// ClockSkewMS is the device clock minus the platform clock at the last
	// message that carried ts; positive when the device runs ahead.
	ClockSkewMS int64 `json:"clock_skew_ms"`

	Messages    uint64    `json:"messages"`
	Invalid     uint64    `json:"invalid"`
	LastInvalid string    `json:"last_invalid,omitempty"` // reason the last invalid message was refused
	InvalidAt   time.Time `json:"invalid_at,omitzero"`
}

// TwinsOptions configures Twins. The zero value works.
type TwinsOptions struct {
	FlushInterval time.Duration // how often changed twins are written; default 1s
	Logger        *slog.Logger
}

// Twins keeps every device's twin in memory and writes changed ones to bbolt
// in batches. It is safe for concurrent use.
type Twins struct {
	db    *bolt.DB
	every time.Duration
	log   *slog.Logger

	mu    sync.Mutex // guards twins, dirty and fresh
	twins map[string]*Twin
	dirty map[string]struct{}
	// fresh holds, by device, the decoded state of telemetry applied since
	// the twin's State was last encoded. A device reports many times
	// between two reads or flushes of its twin, so the state is encoded
	// when the twin is read or written, not on every message.
	fresh map[string]schemas.Telemetry

	flushMu sync.Mutex // serialises Flush
}

// NewTwins loads the twins stored in db.
func NewTwins(db *bolt.DB, o TwinsOptions) (*Twins, error) {
	t := &Twins{
		db:    db,
		every: o.FlushInterval,
		log:   o.Logger,
		twins: map[string]*Twin{},
		dirty: map[string]struct{}{},
		fresh: map[string]schemas.Telemetry{},
	}
	if t.every <= 0 {
		t.every = time.Second
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if err := ensureBuckets(db, bucketTwins); err != nil {
		return nil, fmt.Errorf("load twins: %w", err)
	}
	// A read transaction, so that the registry can load beside it.
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTwins)
		t.twins = make(map[string]*Twin, b.Stats().KeyN)
		return b.ForEach(func(k, v []byte) error {
			tw := new(Twin)
			if err := record.Decode(v, tw); err != nil {
				return fmt.Errorf("twin %s: %w", k, err)
			}
			t.twins[tw.Device] = tw
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load twins: %w", err)
	}
	return t, nil
}

// Run writes changed twins every flush interval until ctx ends, then writes
// once more and returns.
func (t *Twins) Run(ctx context.Context) error {
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return t.Flush()
		case <-tick.C:
			if err := t.Flush(); err != nil {
				t.log.Error("write twins", "err", err)
			}
		}
	}
}

// Flush writes every changed twin in one transaction.
//
// It copies the changed twins under t.mu and encodes them after: every
// message of every device waits for t.mu, and encoding a thousand twins
// takes milliseconds (tens at tens of thousands), which each message
// arriving meanwhile would wait out. Nothing is encoded under t.mu.
func (t *Twins) Flush() error {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()

	t.mu.Lock()
	if len(t.dirty) == 0 {
		t.mu.Unlock()
		return nil
	}
	// A copy shares State with the twin; State is replaced, never changed
	// in place.
	changed := make([]Twin, 0, len(t.dirty))
	var states []freshState
	for id := range t.dirty {
		if tw, ok := t.twins[id]; ok {
			changed = append(changed, *tw)
			if st, ok := t.fresh[id]; ok {
				states = append(states, freshState{i: len(changed) - 1, t: st})
			}
		}
	}
	clear(t.dirty)
	t.mu.Unlock()

	for _, st := range states {
		buf, err := st.t.AppendState(nil)
		if err != nil { // ApplyTelemetry refuses what cannot be encoded
			t.redirty(changed)
			return fmt.Errorf("encode state of %s: %w", changed[st.i].Device, err)
		}
		changed[st.i].State = buf
	}
	batch := make(map[string][]byte, len(changed))
	for i := range changed {
		buf, err := json.Marshal(&changed[i])
		if err != nil {
			t.redirty(changed)
			return fmt.Errorf("encode twin %s: %w", changed[i].Device, err)
		}
		batch[changed[i].Device] = buf
	}

	err := t.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTwins)
		for id, buf := range batch {
			if err := b.Put([]byte(id), buf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.redirty(changed)
		return fmt.Errorf("write twins: %w", err)
	}
	t.keepEncoded(changed, states)
	return nil
}

// freshState is the unencoded state of changed twin i at a flush.
type freshState struct {
	i int
	t schemas.Telemetry
}

// keepEncoded gives the twins the states a flush encoded, unless newer
// telemetry came meanwhile.
func (t *Twins) keepEncoded(changed []Twin, states []freshState) {
	if len(states) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, st := range states {
		id := changed[st.i].Device
		cur, ok := t.fresh[id]
		tw := t.twins[id]
		if !ok || tw == nil || cur.State() != st.t.State() {
			continue
		}
		tw.State = changed[st.i].State
		delete(t.fresh, id)
	}
}

// redirty marks twins changed again, so the next flush retries them.
func (t *Twins) redirty(changed []Twin) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range changed {
		t.dirty[changed[i].Device] = struct{}{}
	}
}

// Presence says how a status message changed a device's presence.
type Presence int

// Presence outcomes of ApplyStatus.
const (
	PresenceSame    Presence = iota // no change
	PresenceOnline                  // went online (or reconnected on a new connection)
	PresenceOffline                 // went offline
	PresenceStale                   // a will left by an older connection; ignored
)

// ApplyStatus records a status message of d received at the platform time at.
//
// Presence is tracked per connection: an offline status whose conn differs
// from the current connection's is the late will of a connection the device
// has already replaced, and does not mark it offline.
func (t *Twins) ApplyStatus(d Device, st schemas.Status, at time.Time) Presence {
	t.mu.Lock()
	defer t.mu.Unlock()
	tw := t.twin(d)
	t.seen(tw, st.Meta, at)
	return applyStatus(tw, st, at)
}

// ReplayStatus records a retained status the broker delivered when the
// controller subscribed. It may be old: it sets presence, but it is not a
// sign of life, so last seen, clock skew and the message count stay as
// they were.
//
// A replayed online status brings an offline device back only when it comes
// from a connection the twin has not seen, that is when the device
// reconnected while the controller was away. The status of the connection
// already found offline (silent, or its will) is old news.
func (t *Twins) ReplayStatus(d Device, st schemas.Status, at time.Time) Presence {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, wasDirty := t.dirty[d.ID]
	_, existed := t.twins[d.ID]
	tw := t.twin(d)
	before := *tw
	p := PresenceSame
	if !st.Online || tw.Online || (st.Conn != "" && st.Conn != tw.Conn) {
		p = applyStatus(tw, st, at)
	}
	// A restart replays every device's status; one that changes nothing
	// leaves its twin clean, so the first flush does not rewrite them all.
	if existed && !wasDirty && samePresence(before, *tw) {
		delete(t.dirty, d.ID)
	}
	return p
}

// samePresence reports whether a and b agree on what a status sets.
func samePresence(a, b Twin) bool {
	return a.Online == b.Online && a.Conn == b.Conn && a.Firmware == b.Firmware &&
		a.Model == b.Model && a.IntervalS == b.IntervalS &&
		a.ConnectedSince.Equal(b.ConnectedSince) && a.OfflineSince.Equal(b.OfflineSince)
}

func applyStatus(tw *Twin, st schemas.Status, at time.Time) Presence {
	if st.Firmware != "" {
		tw.Firmware = st.Firmware
	}
	if st.Model != "" {
		tw.Model = st.Model
	}
	if st.IntervalS > 0 {
		tw.IntervalS = st.IntervalS
	}

	if !st.Online {
		if st.Conn != "" && tw.Conn != "" && st.Conn != tw.Conn {
			return PresenceStale
		}
		if !tw.Online {
			return PresenceSame
		}
		tw.Online = false
		tw.OfflineSince = at
		return PresenceOffline
	}

	if tw.Online && st.Conn == tw.Conn {
		return PresenceSame
	}
	tw.Online = true
	tw.Conn = st.Conn
	tw.ConnectedSince = at
	tw.OfflineSince = time.Time{}
	return PresenceOnline
}

// ApplyTelemetry records a telemetry message of d received at at.
// It returns whether the message brought the device back online (a device
// that reports is present, whatever its last status said).
//
// The twin keeps m's state as it is and encodes it when the twin is next
// read or written: the caller must not change the state afterwards. The
// error is that of a state that cannot be encoded (a number that is not
// finite), which a decoded message never holds.
func (t *Twins) ApplyTelemetry(d Device, m schemas.Telemetry, at time.Time) (bool, error) {
	state := m.State()
	if err := encodable(state); err != nil {
		return false, fmt.Errorf("encode state of %s: %w", d.ID, err)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	tw := t.twin(d)
	t.seen(tw, m.Meta, at)
	m.Meta = schemas.Meta{} // the state is kept, not the envelope
	t.fresh[d.ID] = m
	tw.StateAt = at
	if tw.Online {
		return false, nil
	}
	// A device that reports is present, whatever its last status said. Its
	// connection is not known (its status was lost or refused), so the
	// next will, whatever its conn, counts.
	tw.Online = true
	tw.Conn = ""
	tw.ConnectedSince = at
	tw.OfflineSince = time.Time{}
	return true, nil
}

// settle encodes the state last applied to tw, if it has not been yet.
// t.mu must be held.
func (t *Twins) settle(tw *Twin) {
	m, ok := t.fresh[tw.Device]
	if !ok {
		return
	}
	delete(t.fresh, tw.Device)
	buf, err := m.AppendState(nil)
	if err != nil {
		// ApplyTelemetry refused what cannot be encoded; keep the last state.
		t.log.Error("encode twin state", "device", tw.Device, "err", err)
		return
	}
	tw.State = buf
}

// encodable checks that json.Marshal takes every number of a state: the
// only values it refuses are NaN and the infinities.
func encodable(state any) error {
	bad := func(fs ...*float64) error {
		for _, f := range fs {
			if f != nil && (math.IsNaN(*f) || math.IsInf(*f, 0)) {
				return fmt.Errorf("json: unsupported value: %v", *f)
			}
		}
		return nil
	}
	switch s := state.(type) {
	case *schemas.ACState:
		if s != nil {
			return bad(&s.SetpointC, &s.RoomC, s.OutdoorC, s.HumidityPct, s.PowerW)
		}
	case *schemas.LockState:
		if s != nil {
			return bad(s.BatteryPct)
		}
	case *schemas.ChargerState:
		if s != nil {
			for i := range s.Slots {
				if err := bad(s.Slots[i].SocPct, s.Slots[i].TempC); err != nil {
					return err
				}
			}
			return bad(s.CabinetC)
		}
	case *schemas.AEDState:
		if s != nil {
			return bad(&s.BatteryPct, s.CabinetC)
		}
	}
	return nil
}

// Seen records a valid message of d other than status and telemetry.
func (t *Twins) Seen(d Device, meta schemas.Meta, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen(t.twin(d), meta, at)
}

// Refused records an invalid message of d and why it was refused.
func (t *Twins) Refused(d Device, reason string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tw := t.twin(d)
	tw.Invalid++
	tw.LastInvalid = reason
	tw.InvalidAt = at
	t.dirty[d.ID] = struct{}{}
}

// MarkOffline sets a device offline (silence, or a station-wide loss).
// It reports whether the twin changed.
func (t *Twins) MarkOffline(id string, at time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	tw, ok := t.twins[id]
	if !ok || !tw.Online {
		return false
	}
	tw.Online = false
	tw.OfflineSince = at
	t.dirty[id] = struct{}{}
	return true
}

// Get returns a copy of a device's twin.
func (t *Twins) Get(id string) (Twin, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tw, ok := t.twins[id]
	if !ok {
		return Twin{}, false
	}
	t.settle(tw)
	return *tw, true
}

// LastSeen returns the latest time any device was seen, or zero.
func (t *Twins) LastSeen() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var last time.Time
	for _, tw := range t.twins {
		if tw.LastSeen.After(last) {
			last = tw.LastSeen
		}
	}
	return last
}

// All returns copies of every twin, sorted by station and device.
func (t *Twins) All() []Twin {
	t.mu.Lock()
	out := make([]Twin, 0, len(t.twins))
	for _, tw := range t.twins {
		t.settle(tw)
		out = append(out, *tw)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Twin) int {
		if c := strings.Compare(a.Station, b.Station); c != 0 {
			return c
		}
		return strings.Compare(a.Device, b.Device)
	})
	return out
}

// Online counts the devices online now.
func (t *Twins) Online() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, tw := range t.twins {
		if tw.Online {
			n++
		}
	}
	return n
}

// twin returns the twin of d, creating it. t.mu must be held.
func (t *Twins) twin(d Device) *Twin {
	tw, ok := t.twins[d.ID]
	if !ok {
		tw = &Twin{Device: d.ID, Station: d.Station, Kind: d.Kind, Firmware: d.Firmware,
			Model: d.Model, IntervalS: d.IntervalS}
		t.twins[d.ID] = tw
	}
	t.dirty[d.ID] = struct{}{}
	return tw
}

// seen records a valid message. t.mu must be held.
func (t *Twins) seen(tw *Twin, meta schemas.Meta, at time.Time) {
	tw.LastSeen = at
	tw.Messages++
	if meta.Seq > 0 {
		tw.Seq = meta.Seq
	}
	if meta.TS > 0 {
		tw.ClockSkewMS = meta.TS - at.UnixMilli()
	}
}
