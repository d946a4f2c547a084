package schemas

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkDecodeTelemetry decodes the fullest valid telemetry example of
// each kind.
func BenchmarkDecodeTelemetry(b *testing.B) {
	for _, tc := range []struct {
		kind Kind
		file string
	}{
		{KindAC, "telemetry-ac/valid/cooling.json"},
		{KindLock, "telemetry-lock/valid/closed-locked.json"},
		{KindCharger, "telemetry-charger/valid/four-slots.json"},
		{KindAED, "telemetry-aed/valid/ready.json"},
	} {
		payload, err := os.ReadFile(filepath.Join("examples", tc.file))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(string(tc.kind), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := DecodeTelemetry(tc.kind, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeCommand(b *testing.B) {
	payload, err := os.ReadFile(filepath.Join("examples", "cmd/valid/ac-set.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeCommand(payload); err != nil {
			b.Fatal(err)
		}
	}
}
