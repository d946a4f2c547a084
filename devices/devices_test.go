package devices

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/waystation/waystation/schemas"
)

func TestMain(m *testing.M) {
	if os.Getenv("WAYSTATION_HOLD_DB") != "" {
		holdDB()
		return
	}
	goleak.VerifyTestMain(m)
}

func openTestRegistry(t *testing.T) (*Registry, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "waystation.db")
	db, err := OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r, err := NewRegistry(db, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r, path
}

var station = Station{ID: "ys-001", Name: "Renmin Rd", Lat: 32.63, Lon: 116.27, Hours: "24h"}

func TestStationValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Station)
		ok   bool
	}{
		{"good", func(*Station) {}, true},
		{"window", func(s *Station) { s.Hours = "22:00-06:00" }, true},
		{"bad id", func(s *Station) { s.ID = "YS-1" }, false},
		{"reserved id", func(s *Station) { s.ID = "alerts" }, false},
		{"no name", func(s *Station) { s.Name = " " }, false},
		{"lat", func(s *Station) { s.Lat = 91 }, false},
		{"lon", func(s *Station) { s.Lon = -181 }, false},
		{"hours", func(s *Station) { s.Hours = "24:00-06:00" }, false},
		{"hours word", func(s *Station) { s.Hours = "always" }, false},
		{"name of 128", func(s *Station) { s.Name = strings.Repeat("站", 128) }, true},
		{"name of 129", func(s *Station) { s.Name = strings.Repeat("站", 129) }, false},
		{"escape in name", func(s *Station) { s.Name = "Rest\x1b[2J" }, false},
		{"address over lines", func(s *Station) { s.Address = "12 Renmin Rd\nYingshang" }, true},
		{"NUL in address", func(s *Station) { s.Address = "12\x00" }, false},
		{"long org", func(s *Station) { s.Org = strings.Repeat("o", 65) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := station
			tc.edit(&s)
			err := s.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestRegistryDevicesAndSecrets(t *testing.T) {
	r, path := openTestRegistry(t)
	if _, err := r.AddStation(station); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddStation(station); !errors.Is(err, ErrExists) {
		t.Fatalf("second AddStation: %v, want ErrExists", err)
	}
	if _, _, err := r.AddDevice(Device{ID: "d1", Station: "nope", Kind: schemas.KindAC}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("device at unknown station: %v", err)
	}
	if _, _, err := r.AddDevice(Device{ID: "d1", Station: "ys-001", Kind: "toaster"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown kind: %v", err)
	}
	d, secret, err := r.AddDevice(Device{ID: "d1", Station: "ys-001", Kind: schemas.KindAC})
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) < 24 || d.Created.IsZero() {
		t.Fatalf("secret %q created %v", secret, d.Created)
	}

	// The secret works, twice (the second time from the cache), and a
	// wrong one does not.
	for range 2 {
		if _, err := r.Authenticate("d1", []byte(secret)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Authenticate("d1", []byte(secret+"x")); !errors.Is(err, ErrBadSecret) {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := r.Authenticate("d2", []byte(secret)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown device: %v", err)
	}

	// Rotation retires the old secret even though it was cached.
	fresh, err := r.RotateSecret("d1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate("d1", []byte(secret)); !errors.Is(err, ErrBadSecret) {
		t.Fatalf("old secret after rotation: %v", err)
	}
	if _, err := r.Authenticate("d1", []byte(fresh)); err != nil {
		t.Fatal(err)
	}

	// The secret itself is never stored.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if containsBytes(raw, []byte(fresh)) {
		t.Fatal("the plain secret is in the data file")
	}
}

func TestProvisionAddsAndRotates(t *testing.T) {
	r, _ := openTestRegistry(t)
	if _, err := r.AddStation(station); err != nil {
		t.Fatal(err)
	}
	_, old, err := r.AddDevice(Device{ID: "d1", Station: "ys-001", Kind: schemas.KindAC, Model: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := r.Provision([]Device{
		{ID: "d1", Station: "ys-001", Kind: schemas.KindAC},
		{ID: "d2", Station: "ys-001", Kind: schemas.KindLock},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate("d1", []byte(old)); !errors.Is(err, ErrBadSecret) {
		t.Fatalf("old secret still works: %v", err)
	}
	for id, s := range secrets {
		if _, err := r.Authenticate(id, []byte(s)); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	if d, _ := r.Device("d1"); d.Model != "m1" {
		t.Fatalf("provision changed the registered model: %+v", d)
	}
	if _, err := r.Provision([]Device{{ID: "d3", Station: "nope", Kind: schemas.KindAC}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown station: %v", err)
	}
	if _, err := r.Device("d3"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a failed provision left a device behind")
	}
}

func TestAddStationsAllOrNone(t *testing.T) {
	r, _ := openTestRegistry(t)
	bad := station
	bad.ID, bad.Lat = "ys-002", 100
	if err := r.AddStations([]Station{station, bad}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("AddStations: %v", err)
	}
	if len(r.Stations()) != 0 {
		t.Fatal("a rejected list added stations")
	}
	good := station
	good.ID = "ys-002"
	if err := r.AddStations([]Station{station, good}); err != nil {
		t.Fatal(err)
	}
	if got := len(r.Stations()); got != 2 {
		t.Fatalf("%d stations", got)
	}
}

func TestRegistrySurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	db, err := OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := NewRegistry(db, RegistryOptions{})
	r.AddStation(station)
	_, secret, err := r.AddDevice(Device{ID: "d1", Station: "ys-001", Kind: schemas.KindAED})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err = NewRegistry(db, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := r.Authenticate("d1", []byte(secret)); err != nil || d.Kind != schemas.KindAED {
		t.Fatalf("after reopen: %+v %v", d, err)
	}
}

// TestOpenDBHeldByAnotherProcess checks that a second process fails fast
// with ErrLocked instead of hanging on the file lock.
func TestOpenDBHeldByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "WAYSTATION_HOLD_DB="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	buf := make([]byte, 4)
	if _, err := stdout.Read(buf); err != nil {
		t.Fatalf("holder did not start: %v", err)
	}

	start := time.Now()
	_, err = OpenDB(path, 300*time.Millisecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("OpenDB = %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v to give up", d)
	}
}

// holdDB runs in a child process: it opens the file and waits to be killed.
func holdDB() {
	db, err := OpenDB(os.Getenv("WAYSTATION_HOLD_DB"), 0)
	if err != nil {
		os.Exit(2)
	}
	defer db.Close()
	os.Stdout.WriteString("held")
	time.Sleep(time.Minute)
}

func containsBytes(hay, needle []byte) bool {
	for i := 0; i+len(needle) <= len(hay); i++ {
		if string(hay[i:i+len(needle)]) == string(needle) {
			return true
		}
	}
	return false
}
