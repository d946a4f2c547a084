package simulators

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/schemas"
)

func TestRegistryFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reg.yaml")
	specs := []DeviceSpec{
		{Station: "ys-001", Device: "ys-001-ac", Kind: schemas.KindAC, Secret: "s3cr3t-a",
			Model: "KFR-35GW", Firmware: "1.4.2", Interval: 30 * time.Second},
		{Station: "ys-001", Device: "ys-001-lock", Kind: schemas.KindLock, Secret: "s3cr3t-b"},
	}
	if err := WriteRegistry(path, specs); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("registry file: %v, mode %v; want 0600", err, fi.Mode())
	}
	raw, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(raw), "# waystation simulate") {
		t.Errorf("no warning header:\n%s", raw)
	}
	got, err := ReadRegistry(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != specs[0] || got[1] != specs[1] {
		t.Errorf("read back %+v, want %+v", got, specs)
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".registry-*"))
	if len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func TestBadRegistryFileNamesTheLine(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"not yaml", "devices: [", "reg.yaml:"},
		{"no devices", "stations: []\n", "unknown key \"stations\""},
		{"unknown key", "devices:\n  - station: a\n    id: a-1\n    kind: ac\n    colour: red\n",
			"reg.yaml:5: unknown key \"colour\""},
		{"bad kind", "devices:\n  - {station: a, id: a-1, kind: fridge}\n", "reg.yaml:2: kind \"fridge\""},
		{"bad id", "devices:\n  - {station: a, id: A-1, kind: ac}\n", "reg.yaml:2: device id"},
		{"twice", "devices:\n  - {station: a, id: a-1, kind: ac}\n  - {station: a, id: a-1, kind: ac}\n",
			"reg.yaml:3: device a-1 already listed on line 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "reg.yaml")
			if err := os.WriteFile(path, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadRegistry(path)
			if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want ErrSpec naming %q", err, c.want)
			}
		})
	}
	_, err := ReadRegistry(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}
