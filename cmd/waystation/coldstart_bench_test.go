package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	bolt "go.etcd.io/bbolt"

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
	// WAYSTATION_BENCH_DATA names a folder to fill once and start from in
	// later runs, to profile the start alone.
	data := os.Getenv("WAYSTATION_BENCH_DATA")
	if data == "" {
		data = b.TempDir()
	}
	o := serveOptions{
		data: data, mqttAddr: "127.0.0.1:0", wsAddr: "", httpAddr: "127.0.0.1:0",
		maxPacketBytes: 64 << 10, logLevel: "warn", timeZone: "Asia/Shanghai",
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("WAYSTATION_BENCH_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if _, err := os.Stat(filepath.Join(data, "waystation.db")); err != nil {
		setup := time.Now()
		fillColdStart(b, o, log, n)
		b.Logf("%d devices stored in %v", n, time.Since(setup).Round(time.Millisecond))
	}

	var total, opening time.Duration
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		s, err := openServer(o, log)
		if err != nil {
			b.Fatal(err)
		}
		opening += time.Since(start)
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
		cpu0 -= cpuTime() // the stop is not part of the start
		if len(s.twin.All()) != n {
			b.Fatalf("%d twins after the start, want %d", len(s.twin.All()), n)
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		cpu0 += cpuTime()
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/ready")
	b.ReportMetric(opening.Seconds()/float64(b.N), "s/open")
	// On a shared machine, the CPU the start took says more than the wall.
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/ready")
}

// fillColdStart registers n devices, writes a retained online status for
// each into the broker's store (in one transaction: through the broker each
// would be a synced transaction of its own), and has each send one telemetry
// message, then stops the server cleanly.
func fillColdStart(b *testing.B, o serveOptions, log *slog.Logger, n int) {
	b.Helper()
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
	writeRetainedStatuses(b, filepath.Join(o.data, "broker.db"), list)

	s, err := openServer(o, log)
	if err != nil {
		b.Fatal(err)
	}
	stop := runRegistered(b, s, stations, list)
	bus := s.mqtt.Bus()
	for _, d := range list {
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
	stop()
}

// runRegistered registers stations and list on s, runs it until it is
// ready, and returns what stops it and reports its error.
func runRegistered(b *testing.B, s *server, stations []devices.Station, list []devices.Device) (stop func()) {
	b.Helper()
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
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}

// writeRetainedStatuses stores a retained online status of every device in
// the broker's store file, as its storage hook keeps them.
func writeRetainedStatuses(b *testing.B, path string, list []devices.Device) {
	b.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now().Unix()
	err = db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte("mochi"))
		if err != nil {
			return err
		}
		for i, d := range list {
			topic := schemas.DeviceTopic(d.Station, d.ID, schemas.ChannelStatus)
			m := storage.Message{
				ID: storage.RetainedKey + "_" + topic, T: storage.RetainedKey, TopicName: topic,
				Payload:     fmt.Appendf(nil, `{"online":true,"kind":%q,"conn":"c%d"}`, d.Kind, i),
				FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
				Created:     now, Client: d.ID, Origin: d.ID,
			}
			v, err := m.MarshalBinary()
			if err != nil {
				return err
			}
			if err := bk.Put([]byte(m.ID), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
