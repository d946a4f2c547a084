package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// TestBackupWhileServing: a backup of a running server opens with bbolt and
// holds its registry and history; a monitor may not take one.
func TestBackupWhileServing(t *testing.T) {
	ts := startServer(t, nil)
	secret := ts.register(t, "ys-001", "ys-001-ac", schemas.KindAC)
	d, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-ac", secret, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // a second apart: the history's resolution
		d.publish(t, schemas.ChannelTelemetry, false, acTelemetry(i+1, 30-float64(i)))
		receivedSecondApart(t, ts, "ys-001-ac", i+1)
	}
	eventually(t, 10*time.Second, "three samples written", func() bool {
		return ts.metric(t, "waystation_history_points_total") == 3
	})

	dir := t.TempDir()
	file := filepath.Join(dir, "backup.db")
	out, err := runCLI("backup", file, "--server", ts.url, "--token", ts.token)
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if !strings.Contains(out, file) {
		t.Fatalf("backup said %q", out)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}

	db, err := devices.OpenDB(file, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg, err := devices.NewRegistry(db, devices.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Device("ys-001-ac"); err != nil {
		t.Fatalf("device in the backup: %v", err)
	}
	h, err := devices.NewHistory(db, devices.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	samples, err := h.Range("ys-001-ac", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil || len(samples) != 3 {
		t.Fatalf("history in the backup: %d samples, %v", len(samples), err)
	}

	// A monitor may not; nothing is written.
	var op struct {
		Token string `json:"token"`
	}
	if code := ts.api(t, "POST", "/api/v1/operators",
		map[string]any{"name": "desk", "role": "monitor", "orgs": []string{"*"}}, &op); code != 201 {
		t.Fatalf("add operator: %d", code)
	}
	other := filepath.Join(dir, "other.db")
	out, err = runCLI("backup", other, "--server", ts.url, "--token", op.Token)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a monitor's backup: %v\n%s", err, out)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Fatalf("a refused backup left a file: %v", err)
	}
}

// TestCompact: compact refuses a data folder a server runs on; offline, it
// gives back the space pruned history left, and keeps what is left.
func TestCompact(t *testing.T) {
	ts := startServer(t, nil)
	out, err := runCLI("compact", "--data", ts.data)
	if err == nil || !strings.Contains(err.Error(), "held by a running server") {
		t.Fatalf("compact while serving: %v\n%s", err, out)
	}
	ts.stop(t)

	// A day of a sample every 5 minutes for 100 devices, of which the last
	// hour is kept.
	path := filepath.Join(ts.data, "waystation.db")
	db, err := devices.OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	db.NoSync = true
	day := time.Now().UTC().Truncate(time.Hour).Add(-24 * time.Hour)
	now := day
	h, err := devices.NewHistory(db, devices.HistoryOptions{Retention: time.Hour,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	state := json.RawMessage(`{"power":true,"mode":"cool","setpoint_c":26,"room_c":27.5,` +
		`"outdoor_c":35.2,"humidity_pct":70,"power_w":1180,"fault":""}`)
	for m := range 24 * 60 / 5 {
		for d := range 100 {
			h.Record(fmt.Sprintf("ys-%03d-ac", d), day.Add(time.Duration(m)*5*time.Minute), state)
		}
	}
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	now = day.Add(24 * time.Hour)
	for done := false; !done; {
		if done, err = h.Prune(); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err = runCLI("compact", "--data", ts.data)
	if err != nil {
		t.Fatalf("compact: %v\n%s", err, out)
	}
	fa, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compact: %s", out)
	if fa.Size()*4 > fi.Size() || !strings.Contains(out, path+": ") {
		t.Fatalf("compact left %d of %d bytes: %q", fa.Size(), fi.Size(), out)
	}

	// The server starts on the compacted file, and the kept hour is there.
	again := startServer(t, func(o *serveOptions) { o.data = ts.data })
	again.stop(t)
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h, err = devices.NewHistory(db, devices.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.Range("ys-042-ac", day, day.Add(48*time.Hour))
	if err != nil || len(got) != 12 {
		t.Fatalf("after compact: %d samples of the kept hour, %v", len(got), err)
	}
}
