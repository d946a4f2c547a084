package devices

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMosquittoHashMatchesMosquittoPasswd: a hash made by Debian's
// mosquitto_passwd checks out here, and only for its password.
func TestMosquittoHashMatchesMosquittoPasswd(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		// CI installs it (.ci/run); a missing tool is a broken setup.
		t.Fatalf("mosquitto_passwd not installed (apt-get install -y mosquitto): %v", err)
	}
	file := filepath.Join(t.TempDir(), "passwd")
	const secret = "Zm9vYmFyLXNlY3JldC0xOTItYml0cw"
	if out, err := exec.Command(bin, "-c", "-b", file, "ys-001-ac", secret).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	user, hash, ok := strings.Cut(strings.TrimSpace(string(raw)), ":")
	if !ok || user != "ys-001-ac" {
		t.Fatalf("passwd line %q", raw)
	}
	if !MosquittoHashMatches(hash, secret) {
		t.Fatalf("mosquitto_passwd's hash %q does not match its password here", hash)
	}
	if MosquittoHashMatches(hash, secret+"x") {
		t.Fatal("a wrong password matched")
	}

	// Ours has mosquitto_passwd's shape: same iterations, salt and key sizes.
	ours, err := MosquittoHash(secret)
	if err != nil {
		t.Fatal(err)
	}
	theirs := strings.Split(hash, "$")
	mine := strings.Split(ours, "$")
	if len(mine) != 5 || mine[1] != "7" || mine[2] != theirs[2] ||
		len(mine[3]) != len(theirs[3]) || len(mine[4]) != len(theirs[4]) {
		t.Fatalf("our hash %q has not the shape of mosquitto_passwd's %q", ours, hash)
	}
	if !MosquittoHashMatches(ours, secret) || ours == hash {
		t.Fatalf("our hash %q: matches %v, same salt as mosquitto_passwd's %v",
			ours, MosquittoHashMatches(ours, secret), ours == hash)
	}
}

// TestRegistryKeepsBrokerHashes: every way a secret is issued leaves a
// broker hash of that very secret.
func TestRegistryKeepsBrokerHashes(t *testing.T) {
	db, err := OpenDB(filepath.Join(t.TempDir(), "w.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := NewRegistry(db, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddStation(Station{ID: "ys-001", Name: "A", Lat: 32, Lon: 116, Hours: "24h"}); err != nil {
		t.Fatal(err)
	}
	_, s1, err := r.AddDevice(Device{ID: "ys-001-ac", Station: "ys-001", Kind: "ac"})
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := r.Provision([]Device{{ID: "ys-001-lock", Station: "ys-001", Kind: "lock"}})
	if err != nil {
		t.Fatal(err)
	}
	check := func(want map[string]string) {
		t.Helper()
		logins := r.BrokerLogins()
		if len(logins) != len(want) {
			t.Fatalf("logins %+v", logins)
		}
		for _, l := range logins {
			if l.Station != "ys-001" || !MosquittoHashMatches(l.Hash, want[l.Device]) {
				t.Fatalf("login %+v does not match its secret", l)
			}
		}
	}
	check(map[string]string{"ys-001-ac": s1, "ys-001-lock": secrets["ys-001-lock"]})

	s2, err := r.RotateSecret("ys-001-ac")
	if err != nil {
		t.Fatal(err)
	}
	check(map[string]string{"ys-001-ac": s2, "ys-001-lock": secrets["ys-001-lock"]})

	// And they survive a reload.
	r, err = NewRegistry(db, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check(map[string]string{"ys-001-ac": s2, "ys-001-lock": secrets["ys-001-lock"]})
}

// TestRegistryOwner: a registry with an owner refuses other stations with
// a reason, and leaves those already in the file unloaded.
func TestRegistryOwner(t *testing.T) {
	db, err := OpenDB(filepath.Join(t.TempDir(), "w.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	all, err := NewRegistry(db, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"mine", "theirs"} {
		if _, err := all.AddStation(Station{ID: id, Name: id, Lat: 1, Lon: 1, Hours: "24h"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := all.AddDevice(Device{ID: id + "-ac", Station: id, Kind: "ac"}); err != nil {
			t.Fatal(err)
		}
	}
	var added []string
	owner := func(s string) error {
		if strings.HasPrefix(s, "mine") {
			return nil
		}
		return errors.New("not mine")
	}
	r, err := NewRegistry(db, RegistryOptions{Owner: owner,
		StationAdded: func(id string) { added = append(added, id) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Stations()) != 1 || len(r.Devices()) != 1 || r.Foreign() != 1 {
		t.Fatalf("loaded %v %v, foreign %d", r.Stations(), r.Devices(), r.Foreign())
	}
	if _, err := r.Station("theirs"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("theirs: %v", err)
	}
	_, err = r.AddStation(Station{ID: "theirs-2", Name: "x", Lat: 1, Lon: 1, Hours: "24h"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not mine") {
		t.Fatalf("foreign station: %v", err)
	}
	if err := r.AddStations([]Station{{ID: "mine-2", Name: "x", Lat: 1, Lon: 1, Hours: "24h"},
		{ID: "mine-3", Name: "x", Lat: 1, Lon: 1, Hours: "24h"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddStation(Station{ID: "mine-4", Name: "x", Lat: 1, Lon: 1, Hours: "24h"}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(added, ",") != "mine-2,mine-3,mine-4" {
		t.Fatalf("added %v", added)
	}
	if _, _, err := r.AddDevice(Device{ID: "x-ac", Station: "theirs", Kind: "ac"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("device at a foreign station: %v", err)
	}
}
