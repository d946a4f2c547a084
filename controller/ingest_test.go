package controller

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/waystation/waystation/broker"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rig is a controller ingest on a real broker and a real bbolt file.
type rig struct {
	reg   *devices.Registry
	twins *devices.Twins
	ops   *Operators
	bus   *broker.Bus
	in    *Ingest
	prom  *prometheus.Registry
	seen  chan Observation
}

func newRig(t testing.TB, o IngestOptions) *rig {
	return newRigObserving(t, o, true)
}

// newRigObserving is newRig; observe false leaves out the observer that
// feeds rig.seen (it blocks once seen is full and nobody reads it).
func newRigObserving(t testing.TB, o IngestOptions, observe bool) *rig {
	t.Helper()
	db, err := devices.OpenDB(filepath.Join(t.TempDir(), "w.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &rig{prom: prometheus.NewRegistry(), seen: make(chan Observation, 64)}
	if r.reg, err = devices.NewRegistry(db, devices.RegistryOptions{}); err != nil {
		t.Fatal(err)
	}
	if r.twins, err = devices.NewTwins(db, devices.TwinsOptions{}); err != nil {
		t.Fatal(err)
	}
	if r.ops, err = NewOperators(db, nil); err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	r.bus = b.Bus()

	if _, err := r.reg.AddStation(devices.Station{ID: "ys-001", Name: "A", Lat: 32.6, Lon: 116.3,
		Hours: "24h"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []devices.Device{
		{ID: "ys-001-ac", Station: "ys-001", Kind: schemas.KindAC},
		{ID: "ys-001-lock", Station: "ys-001", Kind: schemas.KindLock},
	} {
		if _, _, err := r.reg.AddDevice(d); err != nil {
			t.Fatal(err)
		}
	}

	o.Bus, o.Registry, o.Twins, o.Registerer = r.bus, r.reg, r.twins, r.prom
	o.Logger = slog.New(slog.DiscardHandler)
	if r.in, err = NewIngest(o); err != nil {
		t.Fatal(err)
	}
	if observe {
		r.in.Observe(func(ob Observation) { r.seen <- ob })
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-r.in.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("ingest not ready")
	}
	return r
}

func (r *rig) publish(t *testing.T, device string, ch schemas.Channel, payload string) {
	t.Helper()
	topic := schemas.DeviceTopic("ys-001", device, ch)
	if err := r.bus.Publish(topic, 1, false, []byte(payload)); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) count(ch, result string) float64 {
	return testutil.ToFloat64(r.in.messages.WithLabelValues(ch, result))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIngestCountsEveryOutcome(t *testing.T) {
	r := newRig(t, IngestOptions{})
	good := `{"power":false,"mode":"fan","setpoint_c":26,"room_c":27.5}`
	for _, m := range []struct {
		device, payload, result string
	}{
		{"ys-001-ac", good, ResultOK},
		{"ys-001-ac", `{"power":false}`, ResultInvalid}, // missing fields
		{"ys-001-ac", `[1,2]`, ResultInvalid},           // not an object
		{"ys-001-lock", good, ResultInvalid},            // an AC's state from a lock
		{"ys-001-ghost", good, ResultUnknownDevice},     // never registered
		{"ys-001-ac", `{"power":true,"mode":"cool","setpoint_c":26,"room_c":30}`, ResultOK},
	} {
		before := r.count("telemetry", m.result)
		r.publish(t, m.device, schemas.ChannelTelemetry, m.payload)
		waitFor(t, fmt.Sprintf("%s %s counted %s", m.device, m.payload, m.result), func() bool {
			return r.count("telemetry", m.result) == before+1
		})
	}
	tw, _ := r.twins.Get("ys-001-ac")
	if tw.Messages != 2 || tw.Invalid != 2 || tw.LastInvalid == "" {
		t.Fatalf("twin %+v", tw)
	}
	if _, ok := r.twins.Get("ys-001-ghost"); ok {
		t.Fatal("an unregistered device got a twin")
	}
}

func TestIngestAnswersStationMismatch(t *testing.T) {
	r := newRig(t, IngestOptions{})
	// ys-001-ac is registered at ys-001; a topic that places it elsewhere is
	// not its own (an external broker may let it through).
	topic := schemas.DeviceTopic("ys-009", "ys-001-ac", schemas.ChannelStatus)
	if err := r.bus.Publish(topic, 1, false, []byte(`{"online":true,"kind":"ac"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "mismatch counted", func() bool { return r.count("status", ResultUnknownDevice) == 1 })
}

// TestIngestKeepsOrderPerDevice: a device's messages are handled in the
// order they arrived, whatever the number of shards.
func TestIngestKeepsOrderPerDevice(t *testing.T) {
	r := newRig(t, IngestOptions{Shards: 4})
	const n = 300
	var wg sync.WaitGroup
	for _, dev := range []string{"ys-001-ac", "ys-001-lock"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= n; i++ {
				payload := `{"power":true,"mode":"cool","setpoint_c":26,"room_c":28,"seq":` + fmt.Sprint(i) + `}`
				if dev == "ys-001-lock" {
					payload = `{"door":"closed","bolt":"locked","mode":"normal","seq":` + fmt.Sprint(i) + `}`
				}
				r.publish(t, dev, schemas.ChannelTelemetry, payload)
			}
		}()
	}
	last := map[string]uint64{}
	for got := 0; got < 2*n; got++ {
		select {
		case ob := <-r.seen:
			seq := ob.Telem.Seq
			if seq != last[ob.Device.ID]+1 {
				t.Fatalf("%s: seq %d after %d", ob.Device.ID, seq, last[ob.Device.ID])
			}
			last[ob.Device.ID] = seq
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d messages observed", got, 2*n)
		}
	}
	wg.Wait()
}

// idleIngest is an Ingest on a real registry and broker that is never run,
// so nothing drains its queues; o sets the queue sizes.
func idleIngest(t *testing.T, o IngestOptions) *Ingest {
	t.Helper()
	db, err := devices.OpenDB(filepath.Join(t.TempDir(), "w.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	o.Registry, _ = devices.NewRegistry(db, devices.RegistryOptions{})
	o.Twins, _ = devices.NewTwins(db, devices.TwinsOptions{})
	b, _ := broker.New(broker.Options{Registerer: prometheus.NewRegistry()})
	o.Bus = b.Bus()
	in, err := NewIngest(o)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestIngestDropsWhenFullNeverBlocks: the bus handler returns at once even
// when the queue is full, and the loss is counted.
func TestIngestDropsWhenFullNeverBlocks(t *testing.T) {
	in := idleIngest(t, IngestOptions{Shards: 1, QueueDepth: 2})
	// Not running: nothing drains the queue.
	topic := schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelTelemetry)
	done := make(chan struct{})
	go func() {
		for range 5 {
			in.enqueue(topic, []byte(`{}`), false)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("enqueue blocked on a full queue")
	}
	if got := testutil.ToFloat64(in.messages.WithLabelValues("telemetry", ResultDropped)); got != 3 {
		t.Fatalf("dropped %v, want 3", got)
	}
	if in.QueueDepth() != 2 {
		t.Fatalf("depth %d", in.QueueDepth())
	}
}

// TestIngestEventWaitsForRoom: when the queue is full, telemetry is dropped
// at once but an event waits for room (here made by taking one message
// out), and is dropped and counted only when none comes in time.
func TestIngestEventWaitsForRoom(t *testing.T) {
	in := idleIngest(t, IngestOptions{Shards: 1, QueueDepth: 1})
	telem := schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelTelemetry)
	event := schemas.DeviceTopic("ys-001", "ys-001-aed", schemas.ChannelEvent)
	in.enqueue(telem, []byte(`{}`), false) // fills the queue
	in.enqueue(telem, []byte(`{}`), false) // dropped at once

	done := make(chan struct{})
	go func() {
		in.enqueue(event, []byte(`{"type":"cabinet_opened"}`), false)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("the event did not wait for room")
	case <-time.After(100 * time.Millisecond):
	}
	<-in.shards[0] // room for one
	select {
	case <-done:
	case <-time.After(urgentWait + time.Second):
		t.Fatal("the event still waits with room in the queue")
	}
	if m := <-in.shards[0]; m.topic != event {
		t.Fatalf("queued %s, want the event", m.topic)
	}
	if got := testutil.ToFloat64(in.messages.WithLabelValues("event", ResultDropped)); got != 0 {
		t.Fatalf("events dropped %v, want 0", got)
	}
	if got := testutil.ToFloat64(in.messages.WithLabelValues("telemetry", ResultDropped)); got != 1 {
		t.Fatalf("telemetry dropped %v, want 1", got)
	}

	// With no room coming, the event is dropped after the wait, and counted.
	in.enqueue(telem, []byte(`{}`), false)
	in.enqueue(event, []byte(`{"type":"cabinet_opened"}`), false)
	if got := testutil.ToFloat64(in.messages.WithLabelValues("event", ResultDropped)); got != 1 {
		t.Fatalf("events dropped %v, want 1", got)
	}
}

// TestIngestBoundsQueuedBytes: large messages are dropped once the byte
// budget is spent, however many the queues could hold.
func TestIngestBoundsQueuedBytes(t *testing.T) {
	in := idleIngest(t, IngestOptions{Shards: 1, QueueDepth: 1000, QueueBytes: 1 << 20})
	topic := schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelTelemetry)
	big := make([]byte, 60<<10)
	for range 40 {
		in.enqueue(topic, big, false)
	}
	if n := in.QueueDepth(); n != 17 { // 17 × (60 KiB + topic + 64) ≤ 1 MiB < 18 ×
		t.Fatalf("%d queued, want 17", n)
	}
	if got := testutil.ToFloat64(in.messages.WithLabelValues("telemetry", ResultDropped)); got != 23 {
		t.Fatalf("dropped %v, want 23", got)
	}
	if q := in.queued.Load(); q > 1<<20 {
		t.Fatalf("%d bytes queued over the budget", q)
	}
}

// TestIngestDrainsOnStop: messages already queued when ingest stops are
// handled, not dropped: the broker acknowledged them.
func TestIngestDrainsOnStop(t *testing.T) {
	db, err := devices.OpenDB(filepath.Join(t.TempDir(), "w.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg, _ := devices.NewRegistry(db, devices.RegistryOptions{})
	twins, _ := devices.NewTwins(db, devices.TwinsOptions{})
	reg.AddStation(devices.Station{ID: "ys-001", Name: "A", Lat: 32.6, Lon: 116.3, Hours: "24h"})
	if _, _, err := reg.AddDevice(devices.Device{ID: "ys-001-ac", Station: "ys-001",
		Kind: schemas.KindAC}); err != nil {
		t.Fatal(err)
	}
	b, _ := broker.New(broker.Options{Registerer: prometheus.NewRegistry()})
	in, err := NewIngest(IngestOptions{Bus: b.Bus(), Registry: reg, Twins: twins})
	if err != nil {
		t.Fatal(err)
	}
	topic := schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelTelemetry)
	for i := 1; i <= 50; i++ {
		in.enqueue(topic, fmt.Appendf(nil,
			`{"power":true,"mode":"cool","setpoint_c":26,"room_c":28,"seq":%d}`, i), false)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stopped before the workers ever ran
	if err := in.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if tw, _ := twins.Get("ys-001-ac"); tw.Seq != 50 || tw.Messages != 50 {
		t.Fatalf("after stop: seq %d, messages %d; want 50, 50", tw.Seq, tw.Messages)
	}
}
