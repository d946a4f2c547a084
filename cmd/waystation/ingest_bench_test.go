package main

import (
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
	"github.com/waystation/waystation/simulators/loadgen"
)

// BenchmarkServeIngest measures what a telemetry message costs the whole
// of serve, in process: 1,000 air conditioners (the devices of `waystation
// loadgen`) publish their telemetry into the embedded broker's bus, and
// ingest decodes it, updates the twin and runs every observer serve wires
// (alerts, history, commands, the planner, access, allow-lists, usage, the
// delay histogram); the twins and history are written to bbolt in their
// batches meanwhile. It reports cpu-ns/msg, the process's user and system
// time over the run divided by the messages handled: on a shared machine
// the CPU per message is steadier than the rate. The figure includes the
// broker's routing of an in-process publish and the publishers building
// their payloads, not the network or the MQTT packet reading.
func BenchmarkServeIngest(b *testing.B) {
	o := serveOptions{
		data: b.TempDir(), mqttAddr: "127.0.0.1:0", wsAddr: "", httpAddr: "127.0.0.1:0",
		maxPacketBytes: 64 << 10, logLevel: "warn", timeZone: "Asia/Shanghai",
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("WAYSTATION_BENCH_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	s, err := openServer(o, log)
	if err != nil {
		b.Fatal(err)
	}
	load := loadgen.Devices(1000)
	var stations []devices.Station
	var list []devices.Device
	seen := map[string]bool{}
	for _, d := range load {
		if !seen[d.Station] {
			seen[d.Station] = true
			stations = append(stations, devices.Station{ID: d.Station, Name: "Load " + d.Station,
				Lat: 32.6, Lon: 116.3, Hours: "24h"})
		}
		list = append(list, devices.Device{ID: d.ID, Station: d.Station, Kind: schemas.KindAC})
	}
	defer runRegistered(b, s, stations, list)()
	bus := s.bus()

	// Every device online, as after its connection.
	for _, d := range list {
		st := `{"online":true,"kind":"ac","conn":"c1","interval_s":10}`
		if err := bus.Publish(schemas.DeviceTopic(d.Station, d.ID, schemas.ChannelStatus), 1, true,
			[]byte(st)); err != nil {
			b.Fatal(err)
		}
	}
	for s.twin.Online() < len(list) {
		time.Sleep(time.Millisecond)
	}

	topics := make([]string, len(list))
	for i, d := range list {
		topics[i] = schemas.DeviceTopic(d.Station, d.ID, schemas.ChannelTelemetry)
	}
	const publishers = 8
	okBefore := ingestCount(b, s, controller.ResultOK)
	droppedBefore := ingestCount(b, s, controller.ResultDropped)
	per := b.N/publishers + 1
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, start := cpuTime(), time.Now()
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 256)
			for i := range per {
				// Hold back while ingest is behind, as a network would,
				// without spinning: the figure is ingest's CPU, not ours.
				if i%64 == 0 {
					for s.in.QueueDepth() > 4096 {
						time.Sleep(200 * time.Microsecond)
					}
				}
				// The devices in turn, each publisher its own share.
				k := (p + i*publishers) % len(topics)
				buf = appendTelemetry(buf[:0], s.clock.Now().UnixMilli(), uint64(i+1))
				if err := bus.Publish(topics[k], 0, false, buf); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	want := float64(per * publishers)
	var ok, dropped float64
	for {
		ok = ingestCount(b, s, controller.ResultOK) - okBefore
		dropped = ingestCount(b, s, controller.ResultDropped) - droppedBefore
		if ok+dropped >= want {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/ok, "cpu-ns/msg")
	b.ReportMetric(ok/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(dropped, "dropped")
}

// appendTelemetry appends the payload of loadgen.Telemetry to b.
func appendTelemetry(b []byte, ts int64, seq uint64) []byte {
	b = append(b, `{"power":true,"mode":"cool","setpoint_c":26,"room_c":28.4,"outdoor_c":35.1,`+
		`"humidity_pct":71,"power_w":1150,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, '}')
}

// ingestCount reads waystation_messages_total{channel="telemetry",result}.
func ingestCount(b *testing.B, s *server, result string) float64 {
	b.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "waystation_messages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ch, res string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "channel":
					ch = l.GetValue()
				case "result":
					res = l.GetValue()
				}
			}
			if ch == "telemetry" && res == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
