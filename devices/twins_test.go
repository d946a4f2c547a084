package devices

import (
	"encoding/json"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/waystation/waystation/schemas"
)

var ac = Device{ID: "ys-001-ac", Station: "ys-001", Kind: schemas.KindAC}

func TestPresenceIsPerConnection(t *testing.T) {
	db, err := OpenDB(filepath.Join(t.TempDir(), "w.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tw, err := NewTwins(db, TwinsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 7, 17, 4, 0, 0, 0, time.UTC)
	on := func(conn string) schemas.Status {
		return schemas.Status{Online: true, Kind: schemas.KindAC, Conn: conn, Firmware: "2.1"}
	}
	off := func(conn string) schemas.Status { return schemas.Status{Kind: schemas.KindAC, Conn: conn} }

	steps := []struct {
		st     schemas.Status
		want   Presence
		online bool
	}{
		{on("a"), PresenceOnline, true},
		{on("a"), PresenceSame, true},   // retained status delivered again
		{on("b"), PresenceOnline, true}, // reconnected on a new connection
		{off("a"), PresenceStale, true}, // the old connection's late will
		{off("b"), PresenceOffline, false},
		{off("b"), PresenceSame, false},
		{on("c"), PresenceOnline, true},
		{off(""), PresenceOffline, false}, // a will without conn still counts
	}
	for i, s := range steps {
		at := t0.Add(time.Duration(i) * time.Second)
		if got := tw.ApplyStatus(ac, s.st, at); got != s.want {
			t.Fatalf("step %d: presence %v, want %v", i, got, s.want)
		}
		got, _ := tw.Get(ac.ID)
		if got.Online != s.online {
			t.Fatalf("step %d: online %v, want %v", i, got.Online, s.online)
		}
	}
	got, _ := tw.Get(ac.ID)
	if got.Firmware != "2.1" || got.OfflineSince != t0.Add(7*time.Second) {
		t.Fatalf("twin %+v", got)
	}
}

func TestTwinsFlushAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	db, err := OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	tw, _ := NewTwins(db, TwinsOptions{})
	at := time.Date(2026, 1, 10, 6, 30, 0, 0, time.UTC)
	tw.ApplyStatus(ac, schemas.Status{Online: true, Kind: schemas.KindAC, Conn: "x"}, at)
	room := 24.5
	m := schemas.Telemetry{Kind: schemas.KindAC, Meta: schemas.Meta{TS: at.UnixMilli() + 90_000, Seq: 7},
		AC: &schemas.ACState{Power: true, Mode: "heat", SetpointC: 18, RoomC: room}}
	if back, err := tw.ApplyTelemetry(ac, m, at); err != nil || back {
		t.Fatalf("ApplyTelemetry = %v, %v", back, err)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tw, err = NewTwins(db, TwinsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := tw.Get(ac.ID)
	if !ok || !got.Online || got.Seq != 7 || got.ClockSkewMS != 90_000 {
		t.Fatalf("reloaded twin %+v", got)
	}
	var state schemas.ACState
	if err := json.Unmarshal(got.State, &state); err != nil || state.RoomC != room || state.Mode != "heat" {
		t.Fatalf("state %s: %v", got.State, err)
	}

	// Telemetry from a device marked offline brings it back.
	tw.MarkOffline(ac.ID, at.Add(time.Minute))
	if back, _ := tw.ApplyTelemetry(ac, m, at.Add(2*time.Minute)); !back {
		t.Fatal("telemetry did not bring the device back online")
	}
	if tw.Online() != 1 {
		t.Fatalf("online %d", tw.Online())
	}

	// Back online through telemetry, on a connection whose status never
	// arrived: that connection's will must still take it offline.
	if got := tw.ApplyStatus(ac, schemas.Status{Kind: schemas.KindAC, Conn: "y"}, at.Add(3*time.Minute)); got != PresenceOffline {
		t.Fatalf("will after telemetry-only reconnect: %v, want offline", got)
	}
}

// TestReplayKeepsAnOfflineDeviceOffline: after a restart, the retained
// online status of a connection already found offline does not bring the
// device back; one from a newer connection does.
func TestReplayKeepsAnOfflineDeviceOffline(t *testing.T) {
	db, err := OpenDB(filepath.Join(t.TempDir(), "w.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tw, _ := NewTwins(db, TwinsOptions{})
	at := time.Date(2026, 7, 17, 2, 0, 0, 0, time.UTC)
	on := schemas.Status{Online: true, Kind: schemas.KindAC, Conn: "c1"}
	tw.ApplyStatus(ac, on, at)
	tw.MarkOffline(ac.ID, at.Add(2*time.Minute)) // went silent

	if got := tw.ReplayStatus(ac, on, at.Add(time.Hour)); got != PresenceSame {
		t.Fatalf("replay of the silent connection: %v", got)
	}
	if got, _ := tw.Get(ac.ID); got.Online {
		t.Fatal("a replayed old status brought a silent device back online")
	}
	if got := tw.ReplayStatus(ac, schemas.Status{Online: true, Kind: schemas.KindAC},
		at.Add(time.Hour)); got != PresenceSame {
		t.Fatalf("replay without conn: %v", got)
	}
	newer := schemas.Status{Online: true, Kind: schemas.KindAC, Conn: "c2"}
	if got := tw.ReplayStatus(ac, newer, at.Add(time.Hour)); got != PresenceOnline {
		t.Fatalf("replay of a newer connection: %v", got)
	}
}

// TestReplayUnchangedLeavesTwinClean: the statuses a restart replays that
// change nothing do not make the next flush rewrite the twins.
func TestReplayUnchangedLeavesTwinClean(t *testing.T) {
	db, err := OpenDB(filepath.Join(t.TempDir(), "w.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tw, err := NewTwins(db, TwinsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 7, 17, 4, 0, 0, 0, time.UTC)
	on := schemas.Status{Online: true, Kind: schemas.KindAC, Conn: "a", Firmware: "2.1"}
	tw.ApplyStatus(ac, on, t0)
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	dirty := func() int {
		tw.mu.Lock()
		defer tw.mu.Unlock()
		return len(tw.dirty)
	}
	if p := tw.ReplayStatus(ac, on, t0.Add(time.Minute)); p != PresenceSame || dirty() != 0 {
		t.Fatalf("same status replayed: %v, %d dirty", p, dirty())
	}
	on.Firmware = "2.2"
	if tw.ReplayStatus(ac, on, t0.Add(time.Minute)); dirty() != 1 {
		t.Fatal("a replayed status with new firmware left the twin clean")
	}
	if got, _ := tw.Get(ac.ID); got.Firmware != "2.2" || !got.Online {
		t.Fatalf("twin %+v", got)
	}
}

// The twin encodes a reported state when it is read or written, not on
// every message: what it serves and stores is still the last state
// reported, encoded as json.Marshal encodes it.
func TestTwinStateIsTheLastReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	db, err := OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tw, err := NewTwins(db, TwinsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 7, 17, 4, 0, 0, 0, time.UTC)
	var last *schemas.ACState
	for i := range 5 {
		room, hum := 24.5+float64(i)/10, 60.0+float64(i)
		last = &schemas.ACState{Power: i%2 == 0, Mode: "cool", SetpointC: 26, RoomC: room,
			HumidityPct: &hum, Fault: "E" + string(rune('1'+i))}
		m := schemas.Telemetry{Kind: schemas.KindAC, AC: last}
		if _, err := tw.ApplyTelemetry(ac, m, at.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
		if i == 2 { // read in between
			got, _ := tw.Get(ac.ID)
			want, _ := json.Marshal(last)
			if string(got.State) != string(want) {
				t.Fatalf("state after 3 reports %s, want %s", got.State, want)
			}
		}
	}
	want, _ := json.Marshal(last)
	if all := tw.All(); len(all) != 1 || string(all[0].State) != string(want) {
		t.Fatalf("All: %+v, want state %s", all, want)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	again, err := NewTwins(db, TwinsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := again.Get(ac.ID)
	if string(got.State) != string(want) || !got.StateAt.Equal(at.Add(4*time.Second)) {
		t.Fatalf("stored state %s at %v, want %s", got.State, got.StateAt, want)
	}

	// A state json.Marshal cannot encode is refused at once, as before.
	nan := math.NaN()
	bad := schemas.Telemetry{Kind: schemas.KindAC, AC: &schemas.ACState{Mode: "cool", RoomC: 20,
		OutdoorC: &nan}}
	if _, err := tw.ApplyTelemetry(ac, bad, at.Add(time.Minute)); err == nil {
		t.Fatal("a NaN state was taken")
	}
	if got, _ := tw.Get(ac.ID); string(got.State) != string(want) {
		t.Fatalf("state after a refused one %s, want %s", got.State, want)
	}
}
