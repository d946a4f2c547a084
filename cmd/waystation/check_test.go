package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(good, []byte(`{"door":"closed","bolt":"locked","mode":"normal","battery_pct":81}`), 0o600)
	os.WriteFile(bad, []byte(`{"door":"ajar","bolt":"locked","mode":"normal"}`), 0o600)

	out, err := runCLI("check", "telemetry-lock", good)
	if err != nil || !strings.Contains(out, "valid telemetry-lock") {
		t.Fatalf("good payload: %v\n%s", err, out)
	}
	out, err = runCLI("check", "telemetry-lock", good, bad)
	if err == nil || !strings.Contains(out, "bad.json: invalid telemetry-lock: door") {
		t.Fatalf("bad payload: %v\n%s", err, out)
	}
	if _, err := runCLI("check", "telemetry-toaster", good); err == nil ||
		!strings.Contains(err.Error(), "want one of") {
		t.Fatalf("unknown message: %v", err)
	}
	// Every schema name maps to a channel.
	for _, name := range []string{"status", "telemetry-ac", "telemetry-charger", "telemetry-aed",
		"event", "cmd", "cmd-result", "access-req", "access-res", "access-list"} {
		if _, _, err := messageOf(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
