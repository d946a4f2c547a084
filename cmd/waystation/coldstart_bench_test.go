package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// coldStartPayloads are a quiet telemetry message per kind: nothing in them
// raises an alert.
var coldStartPayloads = map[schemas.Kind]string{
	schemas.KindAC: `{"power":true,"mode":"cool","setpoint_c":26,"room_c":26.5,"outdoor_c":33,` +
		`"humidity_pct":60,"power_w":900,"fault":""}`,
	schemas.KindLock: `{"door":"closed","bolt":"locked","mode":"normal","allowlist_version":1}`,
	schemas.KindCharger: `{"slots":[{"slot":1,"state":"charging","soc_pct":54,"temp_c":31.5},` +
		`{"slot":2,"state":"full","soc_pct":100,"temp_c":27},{"slot":3,"state":"empty"}],` +
		`"cabinet_c":29.8,"smoke":false,"mains":true}`,
	schemas.KindAED: `{"ready":true,"self_test":"pass","battery_pct":90,"pads_expire":"2028-02-29",` +
		`"cabinet_open":false}`,
}

// BenchmarkColdStart measures how long serve takes to be ready (API
// answering, every subscription made, devices let in) on a data folder
// holding WAYSTATION_BENCH_DEVICES devices (default 40,000: 10,000
// stations of a door terminal, an AC, a charger cabinet and an AED), each
// with a twin that has reported state and a retained online status in the
// broker's store. Each iteration is openServer and run until /healthz
// answers 200, then a clean stop; it reports seconds to ready.
func BenchmarkColdStart(b *testing.B) {
	n := 40000
	if v := os.Getenv("WAYSTATION_BENCH_DEVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 4 {
			b.Fatalf("WAYSTATION_BENCH_DEVICES=%q: want a number of at least 4", v)
		}
	}
	o := serveOptions{
		data: b.TempDir(), mqttAddr: "127.0.0.1:0", wsAddr: "", httpAddr: "127.0.0.1:0",
		maxPacketBytes: 64 << 10, logLevel: "warn", timeZone: "Asia/Shanghai",
	}
	log := slog.New(slog.DiscardHandler)
	setup := time.Now()
	fillColdStart(b, o, log, n)
	b.Logf("%d devices stored in %v", n, time.Since(setup).Round(time.Millisecond))

	var total time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		s, err := openServer(o, log)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.run(ctx) }()
		<-s.ready // the listener is there before ready is closed
		url := s.httpURL() + "/healthz"
		for {
			resp, err := http.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)

		b.StopTimer()
		if len(s.twin.All()) != n {
			b.Fatalf("%d twins after the start, want %d", len(s.twin.All()), n)
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/ready")
}

// fillColdStart registers n devices, and has each report an online status
// (retained) and one telemetry message through the broker, then stops the
// server cleanly.
func fillColdStart(b *testing.B, o serveOptions, log *slog.Logger, n int) {
	b.Helper()
	s, err := openServer(o, log)
	if err != nil {
		b.Fatal(err)
	}
	kinds := []schemas.Kind{schemas.KindLock, schemas.KindAC, schemas.KindCharger, schemas.KindAED}
	var stations []devices.Station
	var list []devices.Device
	for i := range (n + 3) / 4 {
		st := fmt.Sprintf("cs-%05d", i)
		stations = append(stations, devices.Station{ID: st, Name: "Cold " + st,
			Lat: 32 + float64(i%1000)/1000, Lon: 116 + float64(i/1000)/100, Hours: "24h"})
		for _, k := range kinds {
			if len(list) < n {
				list = append(list, devices.Device{ID: st + "-" + string(k), Station: st, Kind: k})
			}
		}
	}
	if err := s.devs.AddStations(stations); err != nil {
		b.Fatal(err)
	}
	if _, err := s.devs.Provision(list); err != nil {
		b.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	<-s.ready
	bus := s.mqtt.Bus()
	for i, d := range list {
		status := fmt.Sprintf(`{"online":true,"kind":%q,"conn":"c%d"}`, d.Kind, i)
		if err := bus.Publish(schemas.DeviceTopic(d.Station, d.ID, schemas.ChannelStatus), 1, true,
			[]byte(status)); err != nil {
			b.Fatal(err)
		}
		if err := bus.Publish(schemas.DeviceTopic(d.Station, d.ID, schemas.ChannelTelemetry), 0,
			false, []byte(coldStartPayloads[d.Kind])); err != nil {
			b.Fatal(err)
		}
		for s.in.QueueDepth() > 10000 {
			time.Sleep(time.Millisecond)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		reported := 0
		for _, tw := range s.twin.All() {
			if tw.Online && len(tw.State) > 0 {
				reported++
			}
		}
		if reported == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d twins online with state after 2 minutes", reported, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
