//go:build !race

// The race detector allows 8,128 goroutines at once; two thousand simulated
// devices and their connections take more. make test runs this file in a
// run of its own without -race.

package broker

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/waystation/waystation/schemas"
	"github.com/waystation/waystation/simulators"
)

// stormDevices is how many devices drop at once; WAYSTATION_STORM_DEVICES
// (make soak) asks for more.
func stormDevices(t *testing.T) int {
	n := 2000
	if s := os.Getenv("WAYSTATION_STORM_DEVICES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("WAYSTATION_STORM_DEVICES=%q: want a device count", s)
		}
		n = v
	}
	return n
}

// memInUse is the live heap after a full collection; it logs what the
// runtime holds besides (spans and stack pools it keeps for reuse).
func memInUse(t *testing.T) uint64 {
	for range 3 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	t.Logf("heap in use %.1f MiB (live %.1f MiB, %d objects), stacks %.1f MiB",
		float64(m.HeapInuse)/(1<<20), float64(m.HeapAlloc)/(1<<20), m.HeapObjects,
		float64(m.StackInuse)/(1<<20))
	return m.HeapAlloc
}

// Every device of a fleet loses its connection at the same moment and
// comes back on its own jittered backoff: all of them are back, each with
// a fresh online status, and the process's live memory and goroutines
// return near where they were with the fleet connected before. (The
// process holds the broker and the devices; both must come back.)
func TestReconnectStorm(t *testing.T) {
	n := stormDevices(t)
	creds := testCreds{}
	var specs []simulators.DeviceSpec
	for i := range n {
		st, id := fmt.Sprintf("st-%04d", i/4), fmt.Sprintf("dev-%05d", i)
		creds[id] = struct{ station, secret string }{st, "secret-" + id}
		specs = append(specs, simulators.DeviceSpec{Station: st, Device: id,
			Kind: schemas.KindAC, Secret: "secret-" + id})
	}
	b, err := New(Options{TCPAddr: "127.0.0.1:0", Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// The controller's side: online statuses, as ingest hears them.
	var online atomic.Int64
	bus := b.Bus()
	defer bus.Close()
	err = bus.Subscribe("waystation/v1/+/+/status", 1, func(_ string, p []byte, retained bool) {
		if !retained && strings.Contains(string(p), `"online":true`) {
			online.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	f, err := simulators.NewFleet(simulators.FleetOptions{Broker: "tcp://" + b.TCPAddr(),
		Devices: specs, Seed: 1, ConnectSpread: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	allBack := func(what string, onlineAtLeast int64, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := start.Add(within)
		for f.Connected() < n || atomic.LoadInt64(&b.srv.Info.ClientsConnected) < int64(n) ||
			online.Load() < onlineAtLeast {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d devices think they are connected, the broker has %d, %d of %d "+
					"online statuses; stats %+v", what, f.Connected(), b.srv.Info.ClientsConnected,
					online.Load(), onlineAtLeast, f.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	took := allBack("first connect", int64(n), 60*time.Second)
	t.Logf("%d devices connected in %v", n, took.Round(time.Millisecond))

	// Settled: every device has sent its first messages.
	time.Sleep(time.Second)
	memBefore, goBefore := memInUse(t), runtime.NumGoroutine()

	for _, d := range f.Devices() {
		if err := d.DropConnection(); err != nil {
			t.Fatalf("drop %s: %v", d.ID(), err)
		}
	}
	dropped := time.Now()
	eventually(t, "the broker to see every connection go", func() bool {
		return f.Connected() < n
	})
	allBack("after the storm", int64(2*n), 60*time.Second)
	t.Logf("%d devices back %v after they all dropped", n, time.Since(dropped).Round(time.Millisecond))
	if s := f.Stats(); s.Drops < uint64(n) {
		t.Errorf("devices counted %d drops, want at least %d", s.Drops, n)
	}

	// Memory and goroutines back near where they were.
	time.Sleep(time.Second)
	memAfter, goAfter := memInUse(t), runtime.NumGoroutine()
	t.Logf("live heap %.1f MiB before, %.1f MiB after; goroutines %d before, %d after",
		float64(memBefore)/(1<<20), float64(memAfter)/(1<<20), goBefore, goAfter)
	if limit := memBefore + memBefore/10 + 2<<20; memAfter > limit {
		t.Errorf("live heap %d B after the storm, want at most %d B (before %d B + 10%% + 2 MiB)",
			memAfter, limit, memBefore)
	}
	if goAfter > goBefore+goBefore/50+20 {
		t.Errorf("%d goroutines after the storm, %d before", goAfter, goBefore)
	}
}
