package devices

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/internal/record"
	"github.com/waystation/waystation/schemas"
)

// TestStoredRecordsDecodeAsBefore checks that the loading decoder reads
// records as encoding/json wrote them, to the same values encoding/json
// reads: data folders written before it open unchanged.
func TestStoredRecordsDecodeAsBefore(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 7, 20, 14, 3, 5, 123456789, shanghai)
	twins := []Twin{
		{Device: "ys-001-ac", Station: "ys-001", Kind: schemas.KindAC},
		{Device: "ys-001-ac", Station: "ys-001", Kind: schemas.KindAC, Online: true, LastSeen: at,
			ConnectedSince: at.Add(-time.Hour).UTC(), Conn: "c-1", Firmware: "2.1.0 «β»", Model: "AC-9",
			IntervalS: 30, State: json.RawMessage(`{"power":true,"mode":"cool","room_c":26.5}`),
			StateAt: at, Seq: 1 << 40, ClockSkewMS: -1500, Messages: 12, Invalid: 2,
			LastInvalid: "telemetry: room_c: \"hot\" is not a number\n", InvalidAt: at},
		{Device: "ys-002-lock", Station: "ys-002", Kind: schemas.KindLock, OfflineSince: at,
			State: json.RawMessage(`{"door":"closed","slots":[{"slot":1,"temp_c":-3.25e1}]}`)},
	}
	for _, tw := range twins {
		sameDecoding(t, tw)
	}
	for _, d := range []storedDevice{
		{Device: Device{ID: "ys-001-ac", Station: "ys-001", Kind: schemas.KindAC, Created: at}},
		{Device: Device{ID: "ys-001-chg", Station: "ys-001", Kind: schemas.KindCharger, Model: "C-4",
			Firmware: "1.0", IntervalS: 60, Created: at.UTC()},
			SecretHash: []byte("$argon2id$v=19$m=64,t=1,p=1$salt$hash\x00\xff"),
			BrokerHash: "$7$101$salt$hash=="},
	} {
		sameDecoding(t, d)
	}
	for _, s := range []Station{
		{ID: "ys-001", Name: "Renmin Rd", Lat: 32.63, Lon: 116.27, Hours: "24h", Created: at},
		{ID: "ys-002", Name: "Huaihe \"Bridge\"", Address: "1 Road\nCounty", Lat: -0.5, Lon: 180,
			Org: "Sinopec", Hours: "06:00-22:00", Created: at.UTC()},
	} {
		sameDecoding(t, s)
	}
}

// sameDecoding encodes v with encoding/json and checks that record.Decode
// and encoding/json read it back the same.
func sameDecoding[T any](t *testing.T, v T) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var want, got T
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if err := record.Decode(data, &got); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", data, got, want)
	}
}

// TestRegistryAndTwinsLoadTogether opens a registry and its twins at once
// on one file, as serve does, on a new file and on one with records.
func TestRegistryAndTwinsLoadTogether(t *testing.T) {
	path := filepath.Join(t.TempDir(), "waystation.db")
	open := func() (*bolt.DB, *Registry, *Twins) {
		t.Helper()
		db, err := OpenDB(path, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r *Registry
		var tw *Twins
		errs := make(chan error, 2)
		go func() {
			var err error
			r, err = NewRegistry(db, RegistryOptions{SecretMemoryKiB: 64})
			errs <- err
		}()
		go func() {
			var err error
			tw, err = NewTwins(db, TwinsOptions{})
			errs <- err
		}()
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		return db, r, tw
	}
	db, r, tw := open()
	if _, err := r.AddStation(station); err != nil {
		t.Fatal(err)
	}
	d := Device{ID: "ys-001-ac", Station: station.ID, Kind: schemas.KindAC}
	if _, err := r.Provision([]Device{d}); err != nil {
		t.Fatal(err)
	}
	d, err := r.Device(d.ID)
	if err != nil {
		t.Fatal(err)
	}
	tw.ApplyStatus(d, schemas.Status{Online: true, Kind: schemas.KindAC, Conn: "c1"},
		time.Date(2026, 7, 20, 6, 0, 0, 0, time.UTC))
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	wantTwin, _ := tw.Get(d.ID)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, r, tw = open()
	defer db.Close()
	if got, err := r.Device(d.ID); err != nil || !reflect.DeepEqual(got, d) {
		t.Errorf("device after reopening: %+v, %v; want %+v", got, err, d)
	}
	if got, ok := tw.Get(d.ID); !ok || !reflect.DeepEqual(got, wantTwin) {
		t.Errorf("twin after reopening: %+v, %v; want %+v", got, ok, wantTwin)
	}
}
