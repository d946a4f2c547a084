package simulators

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkFleetConnected measures how many simulated devices one process
// keeps connected and what each costs in memory. The broker is Mosquitto
// in a process of its own, so its memory is not counted. Sizes default to
// 1000 and 5000 devices; WAYSTATION_BENCH_DEVICES=N measures N instead.
func BenchmarkFleetConnected(b *testing.B) {
	sizes := []int{1000, 5000}
	if s := os.Getenv("WAYSTATION_BENCH_DEVICES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("WAYSTATION_BENCH_DEVICES=%q: want a device count", s)
		}
		sizes = []int{n}
	}
	url := startMosquitto(b)
	for _, n := range sizes {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			for b.Loop() {
				measureFleet(b, url, n)
			}
		})
	}
}

// measureFleet connects n devices, holds them connected for a few
// seconds, and reports the cost per device.
func measureFleet(b *testing.B, url string, n int) {
	var specs []DeviceSpec
	for i := range n {
		st := fmt.Sprintf("bs-%04d", i/4)
		k := allKinds[i%len(allKinds)]
		specs = append(specs, DeviceSpec{Station: st, Device: fmt.Sprintf("%s-%d", st, i%4),
			Kind: k})
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()

	f, err := NewFleet(FleetOptions{Broker: url, Devices: specs, Seed: 1,
		ConnectSpread: 2 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()

	deadline := start.Add(2*time.Minute + time.Duration(n)*time.Millisecond)
	for f.Connected() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d connected after %v; stats %+v", f.Connected(), n,
				time.Since(start).Round(time.Second), f.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	connected := time.Since(start)

	// Held for a while, every device still connected and reporting.
	time.Sleep(3 * time.Second)
	if c := f.Connected(); c < n {
		b.Fatalf("only %d of %d still connected", c, n)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)

	b.ReportMetric(float64(n), "devices")
	b.ReportMetric(heap/float64(n), "bytes/device")
	b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/float64(n), "goroutines/device")
	b.ReportMetric(connected.Seconds(), "s-to-connect")
	b.ReportMetric(float64(f.Stats().Failures), "failed-connects")
}

// startMosquitto runs Mosquitto on a free loopback port, letting anyone in,
// until the benchmark ends.
func startMosquitto(b *testing.B) string {
	b.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, err2 := os.Stat(p); err2 == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		// CI installs it (.ci/run); a missing broker is a broken setup.
		b.Fatalf("mosquitto not installed (apt-get install -y mosquitto): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close() // Mosquitto takes the port next

	conf := filepath.Join(b.TempDir(), "mosquitto.conf")
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_connections -1\n"+
		"persistence false\nlog_type error\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return "tcp://" + addr
		}
		if time.Now().After(deadline) {
			b.Fatalf("mosquitto did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
