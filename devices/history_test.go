package devices

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/schemas"
)

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openTestHistory(t testing.TB, o HistoryOptions) (*History, *bolt.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "waystation.db")
	db, err := OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h, err := NewHistory(db, o)
	if err != nil {
		t.Fatal(err)
	}
	return h, db, path
}

func acState(roomC float64) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"power":true,"mode":"cool","setpoint_c":26,`+
		`"room_c":%.2f,"outdoor_c":35.2,"humidity_pct":70,"power_w":1180,"fault":""}`, roomC))
}

func roomOf(t *testing.T, s Sample) float64 {
	t.Helper()
	var st struct {
		RoomC float64 `json:"room_c"`
	}
	if err := json.Unmarshal(s.State, &st); err != nil {
		t.Fatalf("state %s: %v", s.State, err)
	}
	return st.RoomC
}

var t0 = time.Date(2026, 7, 17, 4, 0, 0, 0, time.UTC)

// TestHistoryRange: samples come back in time order within [from, to),
// whether written or still waiting, recorded in order or not.
func TestHistoryRange(t *testing.T) {
	h, _, _ := openTestHistory(t, HistoryOptions{})
	// Out of order, two devices, half written, half waiting.
	for _, i := range []int{3, 0, 4, 1, 2} {
		h.Record("ys-001-ac", t0.Add(time.Duration(i)*10*time.Second), acState(30-float64(i)))
		h.Record("ys-002-ac", t0.Add(time.Duration(i)*10*time.Second), acState(20))
	}
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{6, 5} {
		h.Record("ys-001-ac", t0.Add(time.Duration(i)*10*time.Second), acState(30-float64(i)))
	}
	if h.Pending() != 2 {
		t.Fatalf("pending %d, want 2", h.Pending())
	}

	got, err := h.Range("ys-001-ac", t0.Add(10*time.Second), t0.Add(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var rooms []float64
	for i, s := range got {
		if want := t0.Add(time.Duration(i+1) * 10 * time.Second); !s.At.Equal(want) {
			t.Fatalf("sample %d at %v, want %v", i, s.At, want)
		}
		rooms = append(rooms, roomOf(t, s))
	}
	if fmt.Sprint(rooms) != "[29 28 27 26 25]" {
		t.Fatalf("rooms %v, want [29 28 27 26 25] (60 s excluded)", rooms)
	}

	// After a flush, the same answer from the file alone.
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	again, err := h.Range("ys-001-ac", t0.Add(10*time.Second), t0.Add(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(got) || string(again[4].State) != string(got[4].State) {
		t.Fatalf("after flush %d samples, before %d", len(again), len(got))
	}
	if got := testutil.ToFloat64(h.points); got != 12 {
		t.Fatalf("points written %v, want 12", got)
	}

	for _, c := range []struct {
		device   string
		from, to time.Time
	}{
		{"ys-003-ac", t0, t0.Add(time.Hour)},                    // no such device
		{"ys-001-ac", t0.Add(time.Hour), t0.Add(2 * time.Hour)}, // after every sample
		{"ys-001-ac", t0.Add(time.Minute), t0},                  // to before from
	} {
		got, err := h.Range(c.device, c.from, c.to)
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("%s %v-%v: %v, %v; want none", c.device, c.from, c.to, got, err)
		}
	}
}

// TestHistoryStepAndLimit: Step thins samples to one per step across what
// is written and what waits; Limit keeps the oldest.
func TestHistoryStepAndLimit(t *testing.T) {
	h, _, _ := openTestHistory(t, HistoryOptions{})
	for i := range 60 { // every 10 s for 10 minutes
		h.Record("ys-001-ac", t0.Add(time.Duration(i)*10*time.Second), acState(float64(i)))
		if i == 29 {
			if err := h.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := h.Read("ys-001-ac", HistoryQuery{From: t0, To: t0.Add(time.Hour), Step: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("%d samples one a minute over 10 minutes, want 10", len(got))
	}
	for i, s := range got {
		if !s.At.Equal(t0.Add(time.Duration(i) * time.Minute)) {
			t.Fatalf("sample %d at %v", i, s.At)
		}
	}
	got, err = h.Read("ys-001-ac", HistoryQuery{From: t0.Add(5 * time.Second), To: t0.Add(time.Hour),
		Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[0].At.Equal(t0.Add(10*time.Second)) || roomOf(t, got[2]) != 3 {
		t.Fatalf("limit 3 from 5 s: %+v", got)
	}
}

// TestHistorySameTimeKeepsLast: two samples of a device at the same time
// are one, the later recorded, in memory and on disk.
func TestHistorySameTimeKeepsLast(t *testing.T) {
	h, _, _ := openTestHistory(t, HistoryOptions{})
	h.Record("ys-001-ac", t0, acState(1))
	h.Record("ys-001-ac", t0, acState(2))
	check := func(when string) {
		got, err := h.Range("ys-001-ac", t0, t0.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || roomOf(t, got[0]) != 2 {
			t.Fatalf("%s: %d samples, want one with room 2", when, len(got))
		}
	}
	check("waiting")
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	check("written")
}

// TestHistoryKeepsASecondOnce: a device's samples within one second of the
// clock are kept as its last, waiting or written; the next second starts a
// new sample, an older sample is not taken for a newer one, and another
// device is kept apart. Resolution 1ns keeps every one.
func TestHistoryKeepsASecondOnce(t *testing.T) {
	h, _, _ := openTestHistory(t, HistoryOptions{})
	sec := t0.Truncate(time.Second)
	for i := range 10 {
		h.Record("ys-001-ac", sec.Add(time.Duration(i)*90*time.Millisecond), acState(float64(i)))
		h.Record("ys-002-ac", sec.Add(time.Duration(i)*90*time.Millisecond), acState(float64(100+i)))
	}
	h.Record("ys-001-ac", sec.Add(time.Second), acState(20))
	h.Record("ys-001-ac", sec.Add(1500*time.Millisecond), acState(21))
	h.Record("ys-001-ac", sec.Add(1200*time.Millisecond), acState(22)) // older than the one waiting
	rooms := func(device string) []float64 {
		got, err := h.Range(device, sec, sec.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		var r []float64
		for _, s := range got {
			r = append(r, roomOf(t, s))
		}
		return r
	}
	for _, when := range []string{"waiting", "written"} {
		if got := rooms("ys-001-ac"); !slices.Equal(got, []float64{9, 22, 21}) {
			t.Errorf("%s: ys-001-ac kept rooms %v, want 9 22 21", when, got)
		}
		if got := rooms("ys-002-ac"); !slices.Equal(got, []float64{109}) {
			t.Errorf("%s: ys-002-ac kept rooms %v, want 109", when, got)
		}
		if err := h.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(h.replaced); got != 19 {
		t.Errorf("replaced %v, want 19", got)
	}

	every, _, _ := openTestHistory(t, HistoryOptions{Resolution: time.Nanosecond})
	for i := range 10 {
		every.Record("ys-001-ac", sec.Add(time.Duration(i)*time.Millisecond), acState(float64(i)))
	}
	if got, _ := every.Range("ys-001-ac", sec, sec.Add(time.Second)); len(got) != 10 {
		t.Errorf("at 1ns resolution %d samples kept, want 10", len(got))
	}
}

// TestHistorySameTimeAfterAStepBack: after the clock stepped back, a device
// can have two waiting samples at one time; the one recorded last is the
// one written, for every device of the batch.
func TestHistorySameTimeAfterAStepBack(t *testing.T) {
	h, _, _ := openTestHistory(t, HistoryOptions{})
	sec := t0.Truncate(time.Second)
	const devices = 200
	for _, step := range []struct {
		at   time.Duration
		room float64
	}{
		{1500 * time.Millisecond, 1},
		{1200 * time.Millisecond, 2}, // the clock stepped back
		{1500 * time.Millisecond, 3}, // replaces the 1.2 s sample
	} {
		for d := range devices {
			h.Record(fmt.Sprintf("dev-%03d", d), sec.Add(step.at), acState(step.room))
		}
	}
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	for d := range devices {
		id := fmt.Sprintf("dev-%03d", d)
		got, err := h.Range(id, sec, sec.Add(time.Minute))
		if err != nil || len(got) != 1 || roomOf(t, got[0]) != 3 {
			var rooms []float64
			for _, s := range got {
				rooms = append(rooms, roomOf(t, s))
			}
			t.Fatalf("%s: rooms %v (%v), want the last recorded, 3", id, rooms, err)
		}
	}
}

// TestHistoryReplaceWhileFlushing: samples recorded while batches are
// written, several replacing the one before: every second of every device
// ends with its last sample, whichever batch took the ones before.
func TestHistoryReplaceWhileFlushing(t *testing.T) {
	h, _, _ := openTestHistory(t, HistoryOptions{Batch: 7})
	sec := t0.Truncate(time.Second)
	const devices, perDevice = 4, 1000 // ten samples a second, for 100 s
	var wg sync.WaitGroup
	stop := make(chan struct{})
	flushed := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				flushed <- h.Flush()
				return
			default:
				if err := h.Flush(); err != nil {
					flushed <- err
					return
				}
			}
		}
	}()
	for d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perDevice {
				h.Record(fmt.Sprintf("dev-%d", d), sec.Add(time.Duration(i)*100*time.Millisecond),
					acState(float64(i)))
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	for d := range devices {
		got, err := h.Range(fmt.Sprintf("dev-%d", d), sec, sec.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		last := map[int64]float64{} // a second's last sample
		for _, s := range got {
			last[s.At.Unix()] = roomOf(t, s)
		}
		if len(last) != perDevice/10 {
			t.Fatalf("dev-%d: %d seconds kept, want %d", d, len(last), perDevice/10)
		}
		for at, room := range last {
			if want := float64((at-sec.Unix())*10 + 9); room != want {
				t.Fatalf("dev-%d: second %d ends with room %v, want %v", d, at-sec.Unix(), room, want)
			}
		}
	}
}

// TestHistoryRecordNeverBlocks: past the buffer, Record drops and counts.
func TestHistoryRecordNeverBlocks(t *testing.T) {
	h, _, _ := openTestHistory(t, HistoryOptions{Buffer: 100, Batch: 10})
	state := acState(25)
	for i := range 150 {
		h.Record("ys-001-ac", t0.Add(time.Duration(i)*time.Second), state)
	}
	h.Record("", t0, state)                   // no device
	h.Record("ys-001-ac", time.Time{}, state) // no time
	if got := testutil.ToFloat64(h.dropped); got != 52 {
		t.Fatalf("dropped %v, want 52", got)
	}
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(h.points); got != 100 {
		t.Fatalf("written %v, want 100", got)
	}
	// The copy is kept, not the caller's buffer.
	buf := []byte(`{"room_c":1}`)
	h.Record("ys-001-ac", t0.Add(time.Hour), buf)
	copy(buf, `{"room_c":9}`)
	got, _ := h.Range("ys-001-ac", t0.Add(time.Hour), t0.Add(2*time.Hour))
	if len(got) != 1 || string(got[0].State) != `{"room_c":1}` {
		t.Fatalf("got %+v", got)
	}
}

// TestHistoryRun: Run writes a full batch without waiting for the flush
// interval, and writes what is left when it stops.
func TestHistoryRun(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, db, _ := openTestHistory(t, HistoryOptions{Batch: 50, FlushEvery: time.Hour, Registerer: reg})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()

	for i := range 50 {
		h.Record("ys-001-ac", t0.Add(time.Duration(i)*time.Second), acState(25))
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(h.points) != 50 {
		if time.Now().After(deadline) {
			t.Fatalf("a full batch not written within 5 s: %v", testutil.ToFloat64(h.points))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 7 {
		h.Record("ys-002-ac", t0.Add(time.Duration(i)*time.Second), acState(25))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if h.Pending() != 0 {
		t.Fatalf("%d samples left waiting after Run", h.Pending())
	}
	var n int
	db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketHistory).Bucket([]byte("ys-002-ac")).Stats().KeyN
		return nil
	})
	if n != 7 {
		t.Fatalf("%d samples of ys-002-ac on disk, want 7", n)
	}
	if c, err := testutil.GatherAndCount(reg, "waystation_history_batch_seconds"); err != nil || c != 1 {
		t.Fatalf("batch latency metric: %d, %v", c, err)
	}
}

// Many devices reporting once each are written once FlushDevices of them
// wait, before the interval and well under a batch.
func TestHistoryRunManyDevices(t *testing.T) {
	h, _, _ := openTestHistory(t, HistoryOptions{FlushDevices: 20, FlushEvery: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	for i := range 19 {
		h.Record(fmt.Sprintf("ys-%03d-ac", i), t0, acState(25))
		h.Record(fmt.Sprintf("ys-%03d-ac", i), t0.Add(time.Second), acState(25))
	}
	time.Sleep(50 * time.Millisecond)
	if got := testutil.ToFloat64(h.points); got != 0 {
		t.Fatalf("%v samples of 19 devices written before the 20th reported", got)
	}
	h.Record("ys-019-ac", t0, acState(25))
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(h.points) != 39 {
		if time.Now().After(deadline) {
			t.Fatalf("20 devices waiting, %v of 39 samples written within 5 s", testutil.ToFloat64(h.points))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHistoryPrune: samples past the retention go, on the injected clock,
// in passes of at most the budget, and a device left without samples
// leaves no bucket behind.
func TestHistoryPrune(t *testing.T) {
	clock := &testClock{t: t0}
	h, db, _ := openTestHistory(t, HistoryOptions{Retention: time.Hour, PruneBudget: 25,
		PruneEvery: 10 * time.Minute, Now: clock.Now})
	for i := range 120 { // two hours, one a minute
		at := t0.Add(time.Duration(i) * time.Minute)
		h.Record("ys-001-ac", at, acState(25))
		if i < 30 {
			h.Record("ys-002-ac", at, acState(25))
		}
	}
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Hour) // cutoff: t0+1h
	passes := 0
	for done := false; !done; passes++ {
		var err error
		if done, err = h.Prune(); err != nil {
			t.Fatal(err)
		}
		if passes > 10 {
			t.Fatal("prune does not finish")
		}
	}
	// 60 of ys-001-ac and 30 of ys-002-ac, 25 a pass.
	if passes != 4 || testutil.ToFloat64(h.pruned) != 90 {
		t.Fatalf("%d passes, %v pruned; want 4 and 90", passes, testutil.ToFloat64(h.pruned))
	}
	got, _ := h.Range("ys-001-ac", t0, t0.Add(3*time.Hour))
	if len(got) != 60 || !got[0].At.Equal(t0.Add(time.Hour)) {
		t.Fatalf("%d samples left, first %v", len(got), got[0].At)
	}
	db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketHistory).Bucket([]byte("ys-002-ac")) != nil {
			t.Error("the bucket of a device without samples is left")
		}
		return nil
	})
	// Not again before PruneEvery.
	clock.Add(5 * time.Minute)
	if _, err := h.Prune(); err != nil || testutil.ToFloat64(h.pruned) != 90 {
		t.Fatalf("pruned before PruneEvery: %v %v", testutil.ToFloat64(h.pruned), err)
	}
	clock.Add(5 * time.Minute)
	if _, err := h.Prune(); err != nil || testutil.ToFloat64(h.pruned) != 100 {
		t.Fatalf("after PruneEvery: %v %v", testutil.ToFloat64(h.pruned), err)
	}
}

// TestHistoryRetentionFileStopsGrowing is the retention fault: 100 devices
// report every 10 s for a simulated day, with 30 minutes of history kept.
// Once the retention is full, the data file stops growing: pruned pages are
// reused.
func TestHistoryRetentionFileStopsGrowing(t *testing.T) {
	const devicesN, every, retention = 100, 10 * time.Second, 30 * time.Minute
	clock := &testClock{t: t0}
	h, db, path := openTestHistory(t, HistoryOptions{Retention: retention, Now: clock.Now,
		PruneEvery: time.Minute})
	// The test is about space, not durability: without an fsync for each of
	// its 2,880 transactions it runs in seconds.
	db.NoSync = true
	// A whole day takes seconds, but minutes under the race detector, which
	// then runs two hours (four times the retention) unless soaking.
	hours := 24
	if raceEnabled && os.Getenv("WAYSTATION_SOAK") == "" {
		hours = 2
	}
	ids := make([]string, devicesN)
	for i := range ids {
		ids[i] = fmt.Sprintf("ys-%03d-ac", i)
	}
	states := make([]json.RawMessage, 70)
	for i := range states {
		states[i] = acState(25 + float64(i)/10)
	}
	const perCheck = int(10 * time.Minute / every)
	var sizes []int64 // file size every 10 minutes
	var highWater []int64
	for step := range hours * int(time.Hour/every) {
		for i, id := range ids {
			h.Record(id, clock.Now(), states[(step+i)%len(states)])
		}
		clock.Add(every)
		if step%6 == 5 { // a flush and a prune a simulated minute
			if err := h.Flush(); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Prune(); err != nil {
				t.Fatal(err)
			}
		}
		if (step+1)%perCheck == 0 {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, fi.Size())
			db.View(func(tx *bolt.Tx) error {
				highWater = append(highWater, tx.Size())
				return nil
			})
		}
	}
	for i := 5; i < len(sizes); i += 6 {
		t.Logf("after %2d h: file %d bytes, pages up to %d", (i+1)/6, sizes[i], highWater[i])
	}

	// 30 minutes of samples of each device, no more.
	got, err := h.Range(ids[7], t0, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got); n < 180 || n > 187 {
		t.Fatalf("%d samples kept, want 30 minutes (180) and at most a minute's pruning lag", n)
	}
	// Once an hour has passed (twice the retention), the file and the
	// pages it uses stay put.
	const settled = 5 // the check at 1 h
	for i := settled + 1; i < len(sizes); i++ {
		if sizes[i] > sizes[settled] || highWater[i] > highWater[settled]+highWater[settled]/20 {
			t.Fatalf("after %d minutes: file %d bytes, %d in pages; at 1 h: %d, %d",
				(i+1)*10, sizes[i], highWater[i], sizes[settled], highWater[settled])
		}
	}
}

// Decoded telemetry is kept as it is and encoded with its batch: read
// before and after the write, its samples are what json.Marshal makes of
// the states, mixed in time order with encoded ones.
func TestHistoryRecordTelemetry(t *testing.T) {
	h, _, _ := openTestHistory(t, HistoryOptions{})
	at := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	var want []string
	for i := range 6 {
		when := at.Add(time.Duration(i) * time.Second)
		if i%3 == 2 {
			st := acState(20 + float64(i))
			h.Record(ac.ID, when, st)
			want = append(want, string(st))
			continue
		}
		hum := 60.5 + float64(i)
		tm := &schemas.Telemetry{Kind: schemas.KindAC, AC: &schemas.ACState{Power: true, Mode: "cool",
			SetpointC: 26, RoomC: 28.4 + float64(i)/10, HumidityPct: &hum}}
		h.RecordTelemetry(ac.ID, when, tm)
		b, _ := json.Marshal(tm.AC)
		want = append(want, string(b))
	}
	check := func(when string) {
		t.Helper()
		got, err := h.Read(ac.ID, HistoryQuery{From: at, To: at.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d samples, want %d", when, len(got), len(want))
		}
		for i := range got {
			if string(got[i].State) != want[i] || !got[i].At.Equal(at.Add(time.Duration(i)*time.Second)) {
				t.Fatalf("%s: sample %d %s at %v, want %s", when, i, got[i].State, got[i].At, want[i])
			}
		}
	}
	check("before the write")
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	if h.Pending() != 0 {
		t.Fatalf("%d pending after the flush", h.Pending())
	}
	check("after the write")
}
