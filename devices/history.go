package devices

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
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

	"github.com/waystation/waystation/schemas"
)

// bucketHistory holds one bucket per device whose keys are sample times
// (Unix nanoseconds, 8 bytes big-endian, so they sort by time) and whose
// values are the reported state as JSON. A device's samples are one cursor
// seek away, and the oldest are at the front of its bucket, where pruning
// deletes them.
var bucketHistory = []byte("history")

// Defaults of HistoryOptions.
const (
	DefaultHistoryRetention = 7 * 24 * time.Hour
	// Each flush rewrites the last page of every device that reported
	// since the one before: flushing every few seconds, not every second,
	// fills those pages with several samples a rewrite when devices report
	// often (a third less CPU for the whole server at 20,000 messages a
	// second from 1,000 devices).
	DefaultHistoryFlushEvery = 5 * time.Second
	// A transaction holds a page for each device it writes to: many
	// devices reporting once each between flushes are written sooner, so
	// that a flush stays a few megabytes however many devices there are.
	DefaultHistoryFlushDevices = 1024
	DefaultHistoryBatch        = 65536
	DefaultHistoryBuffer       = 1 << 18
	DefaultHistoryPruneEvery   = time.Minute
	DefaultHistoryPruneBudget  = 200000
	// A device reports every few seconds at most; what it sends faster is
	// kept at this resolution (see HistoryOptions.Resolution).
	DefaultHistoryResolution = time.Second
)

// HistoryOptions configures History. The zero value works.
type HistoryOptions struct {
	// Retention is how long samples are kept; older ones are pruned.
	// Default DefaultHistoryRetention.
	Retention time.Duration
	// FlushEvery is how often recorded samples are written, in one
	// transaction, when fewer than Batch are waiting. Default
	// DefaultHistoryFlushEvery.
	FlushEvery time.Duration
	// Batch is how many waiting samples make Run write at once, without
	// waiting for the next flush. Default DefaultHistoryBatch.
	Batch int
	// FlushDevices is how many devices with samples waiting make Run
	// write at once. Default DefaultHistoryFlushDevices.
	FlushDevices int
	// Buffer bounds the samples waiting to be written; Record drops (and
	// counts) what does not fit. Default DefaultHistoryBuffer.
	Buffer int
	// PruneEvery is how often, on the Now clock, samples past the retention
	// are deleted. Default DefaultHistoryPruneEvery.
	PruneEvery time.Duration
	// PruneBudget bounds the samples one pruning transaction deletes, so a
	// large backlog is pruned over several flushes instead of one long
	// write. Default DefaultHistoryPruneBudget.
	PruneBudget int
	// Resolution is the finest the history keeps a device: a sample in the
	// same Resolution-long slot of the clock as the device's latest sample
	// still waiting to be written replaces it, so a device reporting many
	// times a second costs one write a second, as its twin does. Default
	// DefaultHistoryResolution.
	Resolution time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Sample is one recorded state of a device.
type Sample struct {
	At    time.Time       `json:"at"`
	State json.RawMessage `json:"state"`
}

// History keeps devices' reported states over time in bbolt. Record only
// touches memory; Run writes in batches and prunes samples past the
// retention. It is safe for concurrent use.
type History struct {
	db  *bolt.DB
	o   HistoryOptions
	log *slog.Logger

	points   prometheus.Counter
	replaced prometheus.Counter
	dropped  prometheus.Counter
	pruned   prometheus.Counter
	batchS   prometheus.Histogram
	waiting  prometheus.GaugeFunc

	mu       sync.Mutex // guards pending, inflight, spare, latest, frozen
	pending  []point    // recorded, not yet written
	inflight []point    // being written by Flush; still read by Range
	spare    []point    // a written batch's backing array, reused
	wake     chan struct{}
	latest   map[string]int // the index in pending of each device's latest sample: its keys are the devices waiting
	frozen   int            // pending[:frozen] is being taken out by Flush: not replaced

	flushMu   sync.Mutex // serialises Flush and Prune; guards the fields below
	lastPrune time.Time
	pruneFrom []byte // the device where an unfinished prune goes on; nil: the first
}

type point struct {
	device string
	at     int64 // Unix nanoseconds
	state  []byte
	// telem, when state is nil, is the decoded telemetry whose state is
	// encoded when the point is written or read.
	telem *schemas.Telemetry
}

// encoded returns the point's state as JSON, appended to buf when it has
// to be encoded, and buf.
func (p *point) encoded(buf []byte) (state, rest []byte, err error) {
	if p.telem == nil {
		return p.state, buf, nil
	}
	n := len(buf)
	buf, err = p.telem.AppendState(buf)
	if err != nil {
		return nil, buf, err
	}
	return buf[n:len(buf):len(buf)], buf, nil
}

// NewHistory creates the history bucket and registers the metrics.
func NewHistory(db *bolt.DB, o HistoryOptions) (*History, error) {
	if db == nil {
		return nil, errors.New("history needs a db")
	}
	if o.Retention <= 0 {
		o.Retention = DefaultHistoryRetention
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = DefaultHistoryFlushEvery
	}
	if o.Batch <= 0 {
		o.Batch = DefaultHistoryBatch
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultHistoryBuffer
	}
	o.Batch = min(o.Batch, o.Buffer)
	if o.FlushDevices <= 0 {
		o.FlushDevices = DefaultHistoryFlushDevices
	}
	if o.PruneEvery <= 0 {
		o.PruneEvery = DefaultHistoryPruneEvery
	}
	if o.PruneBudget <= 0 {
		o.PruneBudget = DefaultHistoryPruneBudget
	}
	if o.Resolution <= 0 {
		o.Resolution = DefaultHistoryResolution
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &History{db: db, o: o, log: o.Logger.With("component", "history"),
		wake: make(chan struct{}, 1), latest: map[string]int{}}
	err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketHistory)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create history bucket: %w", err)
	}

	h.points = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "waystation_history_points_total",
		Help: "Telemetry samples written to the history.",
	})
	h.replaced = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "waystation_history_replaced_total",
		Help: "Telemetry samples replaced, before they were written, by a later one of " +
			"the same device in the same slot of the history's resolution (a second).",
	})
	h.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "waystation_history_dropped_total",
		Help: "Telemetry samples not kept in the history: the write buffer was full, or writing failed.",
	})
	h.pruned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "waystation_history_pruned_total",
		Help: "Telemetry samples deleted from the history past the retention.",
	})
	h.batchS = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "waystation_history_batch_seconds",
		Help:    "Time to write one batch of history samples, commit included.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	h.waiting = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "waystation_history_pending",
		Help: "Telemetry samples recorded and not yet written.",
	}, func() float64 { return float64(h.Pending()) })
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{h.points, h.replaced, h.dropped, h.pruned, h.batchS, h.waiting} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register history metrics: %w", err)
			}
		}
	}
	return h, nil
}

// Record keeps the state of device at time at. It never blocks: the sample
// waits in memory for Run to write it, and is dropped and counted when the
// buffer is full. A sample in the same slot of the history's resolution as
// the device's latest waiting one replaces it. State is copied.
func (h *History) Record(device string, at time.Time, state json.RawMessage) {
	h.record(point{device: device, at: at.UnixNano(), state: bytes.Clone(state)}, at)
}

func (h *History) record(p point, at time.Time) {
	if p.device == "" || at.Before(time.Unix(0, 0)) {
		h.dropped.Inc()
		return
	}
	h.mu.Lock()
	if i, ok := h.latest[p.device]; ok && i >= h.frozen {
		if q := &h.pending[i]; p.at >= q.at && p.at/int64(h.o.Resolution) == q.at/int64(h.o.Resolution) {
			*q = p
			h.mu.Unlock()
			h.replaced.Inc()
			return
		}
	}
	if len(h.pending) >= h.o.Buffer {
		h.mu.Unlock()
		h.dropped.Inc()
		return
	}
	h.pending = append(h.pending, p)
	h.latest[p.device] = len(h.pending) - 1
	full := len(h.pending) >= h.o.Batch || len(h.latest) >= h.o.FlushDevices
	h.mu.Unlock()
	if full {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// RecordTelemetry keeps the state of a decoded telemetry message of device
// at time at, as Record does with its encoding: the state is encoded when
// the batch is written, and the caller must not change it afterwards.
func (h *History) RecordTelemetry(device string, at time.Time, t *schemas.Telemetry) {
	if t == nil {
		h.dropped.Inc()
		return
	}
	h.record(point{device: device, at: at.UnixNano(), telem: t}, at)
}

// Pending is the number of samples recorded and not yet written.
func (h *History) Pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.pending) + len(h.inflight)
}

// Run writes recorded samples every FlushEvery, or as soon as a batch is
// waiting, and prunes samples past the retention, until ctx ends; then it
// writes what is left and returns.
func (h *History) Run(ctx context.Context) error {
	tick := time.NewTicker(h.o.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return h.Flush()
		case <-h.wake:
			if err := h.Flush(); err != nil {
				h.log.Error("history not written", "err", err)
			}
		case <-tick.C:
			if err := h.Flush(); err != nil {
				h.log.Error("history not written", "err", err)
			}
			if _, err := h.Prune(); err != nil {
				h.log.Error("history not pruned", "err", err)
			}
		}
	}
}

// Flush writes every recorded sample, in transactions of at most Batch
// samples. Samples that could not be written are dropped and counted.
func (h *History) Flush() error {
	h.flushMu.Lock()
	defer h.flushMu.Unlock()
	for {
		// Copy the oldest waiting samples and sort them while they are still
		// pending, so Range sees them throughout; only this method takes
		// samples out of pending.
		h.mu.Lock()
		n := min(len(h.pending), h.o.Batch)
		if n == 0 {
			h.mu.Unlock()
			return nil
		}
		batch := append(h.spare[:0], h.pending[:n]...)
		h.spare = nil
		h.frozen = n
		h.mu.Unlock()
		// Stable: of two samples of a device at the same time, the one
		// recorded (or replaced) later is written last and kept.
		slices.SortStableFunc(batch, func(a, b point) int {
			if c := strings.Compare(a.device, b.device); c != 0 {
				return c
			}
			return cmp.Compare(a.at, b.at)
		})

		h.mu.Lock()
		rest := copy(h.pending, h.pending[n:])
		clear(h.pending[rest:])
		h.pending = h.pending[:rest]
		h.inflight = batch
		h.frozen = 0
		for d, i := range h.latest {
			if i < n {
				delete(h.latest, d) // written
			} else {
				h.latest[d] = i - n
			}
		}
		h.mu.Unlock()

		written, err := h.write(batch)

		h.mu.Lock()
		h.inflight = nil
		clear(batch) // let the states go
		h.spare = batch[:0]
		h.mu.Unlock()
		if err != nil {
			h.dropped.Add(float64(written)) // those not encoded are counted already
			return fmt.Errorf("write history: %w", err)
		}
		h.points.Add(float64(written))
	}
}

// write stores one batch, sorted by device and time, in one transaction:
// most puts append to the end of a device's bucket.
func (h *History) write(batch []point) (written int, err error) {
	start := time.Now()
	skipped := 0
	err = h.db.Update(func(tx *bolt.Tx) error {
		skipped = 0
		root := tx.Bucket(bucketHistory)
		var (
			b    *bolt.Bucket
			last string
			key  [8]byte
			// The states of decoded telemetry, encoded one after the
			// other: bbolt keeps the values it is given until the commit.
			arena = make([]byte, 0, 128*len(batch))
		)
		for i := range batch {
			p := &batch[i]
			var state []byte
			var err error
			if state, arena, err = p.encoded(arena); err != nil {
				// Ingest refuses what cannot be encoded; should one come,
				// it alone is lost.
				h.dropped.Inc()
				skipped++
				h.log.Error("history sample not encoded", "device", p.device, "err", err)
				continue
			}
			if b == nil || p.device != last {
				var err error
				if b, err = root.CreateBucketIfNotExists([]byte(p.device)); err != nil {
					return fmt.Errorf("device %s: %w", p.device, err)
				}
				// Samples arrive in time order: full pages keep the file small.
				b.FillPercent = 0.95
				last = p.device
			}
			binary.BigEndian.PutUint64(key[:], uint64(p.at))
			if err := b.Put(key[:], state); err != nil {
				return fmt.Errorf("device %s: %w", p.device, err)
			}
		}
		return nil
	})
	h.batchS.Observe(time.Since(start).Seconds())
	return len(batch) - skipped, err
}

// Prune deletes samples older than the retention, at most PruneBudget in
// one transaction. It runs when PruneEvery has passed on the Now clock
// since the last complete prune, or when the last one was left unfinished;
// it reports whether every device has been pruned.
func (h *History) Prune() (done bool, err error) {
	h.flushMu.Lock()
	defer h.flushMu.Unlock()
	now := h.o.Now()
	if h.pruneFrom == nil && now.Sub(h.lastPrune) < h.o.PruneEvery {
		return true, nil
	}
	cutoff := sampleKey(now.Add(-h.o.Retention).UnixNano())

	var deleted int
	var next []byte
	err = h.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketHistory)
		var empty [][]byte
		c := root.Cursor()
		k, v := c.First()
		if h.pruneFrom != nil {
			k, v = c.Seek(h.pruneFrom)
		}
		for ; k != nil; k, v = c.Next() {
			if v != nil {
				continue // not a bucket
			}
			b := root.Bucket(k)
			n, isEmpty, err := pruneBucket(b, cutoff, h.o.PruneBudget-deleted)
			if err != nil {
				return fmt.Errorf("device %s: %w", k, err)
			}
			deleted += n
			if isEmpty {
				empty = append(empty, bytes.Clone(k))
			}
			if deleted >= h.o.PruneBudget {
				next = bytes.Clone(k) // this device may have more to prune
				break
			}
		}
		for _, k := range empty {
			if err := root.DeleteBucket(k); err != nil {
				return fmt.Errorf("device %s: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("prune history: %w", err)
	}
	h.pruned.Add(float64(deleted))
	h.pruneFrom = next
	if next == nil {
		h.lastPrune = now
	}
	return next == nil, nil
}

// pruneBucket deletes up to budget keys of b before cutoff. It reports how
// many it deleted and whether b is left empty.
func pruneBucket(b *bolt.Bucket, cutoff []byte, budget int) (int, bool, error) {
	// Deleting under a cursor and then moving it can skip a key, so the keys
	// are gathered first.
	var old [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k, cutoff) < 0 && len(old) < budget; k, _ = c.Next() {
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return 0, false, err
		}
	}
	first, _ := b.Cursor().First()
	return len(old), first == nil, nil
}

// Range returns the samples of device from from (included) to to
// (excluded), oldest first, samples recorded and not yet written included.
func (h *History) Range(device string, from, to time.Time) ([]Sample, error) {
	return h.Read(device, HistoryQuery{From: from, To: to})
}

// HistoryQuery selects samples of one device.
type HistoryQuery struct {
	From, To time.Time // From included, To excluded
	// Step, when positive, thins the samples to at most one per Step: after
	// a sample at t, the next one returned is the first at or after t+Step.
	Step time.Duration
	// Limit, when positive, bounds the samples returned; the oldest come
	// first.
	Limit int
}

// Read returns the samples of device the query selects, oldest first,
// samples recorded and not yet written included.
func (h *History) Read(device string, q HistoryQuery) ([]Sample, error) {
	if !q.To.After(q.From) {
		return []Sample{}, nil
	}
	from, to := max(q.From.UnixNano(), 0), q.To.UnixNano()
	if q.To.After(time.Unix(0, 1<<63-1)) {
		to = 1<<63 - 1
	}
	step := max(int64(q.Step), 1)

	// What is in memory is taken before the transaction starts: a batch
	// whose commit ends after this snapshot is still inflight in it, and a
	// batch committed before it is in the transaction's view.
	mem := h.memory(device, from, to)

	out := []Sample{}
	err := h.db.View(func(tx *bolt.Tx) error {
		var c *bolt.Cursor
		if b := tx.Bucket(bucketHistory).Bucket([]byte(device)); b != nil {
			c = b.Cursor()
		}
		// dbAt is the time of the cursor's sample, or -1 past the end.
		var dbAt int64 = -1
		var dbState []byte
		seek := func(t int64) {
			dbAt = -1
			if c == nil {
				return
			}
			if k, v := c.Seek(sampleKey(t)); k != nil {
				dbAt, dbState = int64(binary.BigEndian.Uint64(k)), v
			}
		}
		seek(from)
		mi := 0
		for q.Limit <= 0 || len(out) < q.Limit {
			var s Sample
			var at int64
			switch {
			case mi < len(mem) && (dbAt < 0 || mem[mi].at <= dbAt):
				at, s.State = mem[mi].at, mem[mi].state
			case dbAt >= 0:
				at, s.State = dbAt, bytes.Clone(dbState)
			default:
				return nil
			}
			if at >= to {
				return nil
			}
			s.At = time.Unix(0, at).UTC()
			out = append(out, s)

			next := at + step
			if next < at { // overflow
				return nil
			}
			for mi < len(mem) && mem[mi].at < next {
				mi++
			}
			if dbAt >= 0 && dbAt < next {
				if step == 1 {
					if k, v := c.Next(); k != nil {
						dbAt, dbState = int64(binary.BigEndian.Uint64(k)), v
					} else {
						dbAt = -1
					}
				} else {
					seek(next)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read history of %s: %w", device, err)
	}
	return out, nil
}

// memory returns the samples of device in [from, to) not yet written,
// sorted by time, the later of two at the same time kept.
func (h *History) memory(device string, from, to int64) []point {
	var mem []point
	h.mu.Lock()
	for _, list := range [][]point{h.inflight, h.pending} {
		for _, p := range list {
			if p.device == device && p.at >= from && p.at < to {
				if p.telem != nil {
					p.state, _, _ = p.encoded(nil)
					p.telem = nil
				}
				mem = append(mem, p)
			}
		}
	}
	h.mu.Unlock()
	sort.SliceStable(mem, func(i, j int) bool { return mem[i].at < mem[j].at })
	// Keep the last of equal times, as the write would.
	out := mem[:0]
	for i, p := range mem {
		if i+1 < len(mem) && mem[i+1].at == p.at {
			continue
		}
		out = append(out, p)
	}
	return out
}

func sampleKey(unixNano int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(max(unixNano, 0)))
}
