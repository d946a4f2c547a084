package devices

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// BenchmarkHistoryWrite records AC telemetry of 1,000 devices, one sample a
// device in turn, while Run writes it in batches to a real bbolt file with
// every commit synced (NOSYNC=1: without fsync); it reports the samples written a second, from the
// first Record until the last one is on disk. The producer waits when the
// buffer is nearly full, so nothing is dropped and the figure is what the
// writer sustains.
func BenchmarkHistoryWrite(b *testing.B) {
	h, db, _ := openTestHistory(b, HistoryOptions{})
	db.NoSync = os.Getenv("NOSYNC") != ""
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("ys-%03d-ac-%d", i/4, i%4)
	}
	states := make([][]byte, 64)
	for i := range states {
		states[i] = acState(24 + float64(i)/10)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()

	at := time.Now()
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpuTime()
	for i := range b.N {
		if i%1024 == 0 {
			for h.Pending() > h.o.Buffer-2*h.o.Batch {
				time.Sleep(time.Millisecond)
			}
		}
		h.Record(ids[i%len(ids)], at.Add(time.Duration(i/len(ids))*10*time.Second),
			states[i%len(states)])
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	if d := testutil.ToFloat64(h.dropped); d != 0 {
		b.Fatalf("%v samples dropped", d)
	}
	if w := testutil.ToFloat64(h.points); w != float64(b.N) {
		b.Fatalf("%v samples written of %d", w, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "points/s")
	// On a shared machine the wall clock says as much about the neighbours
	// as about the writer; the process's CPU time a sample does not.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/point")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
