package controller

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// BenchmarkIngestTelemetry measures the controller's side of the pipeline:
// a telemetry message published into the embedded broker in-process,
// decoded against the contract, and its twin updated, from 100 devices at
// once. Publishers hold back while the queues are deep, as a network would,
// so the figure is what ingest keeps up with, not how fast it drops.
func BenchmarkIngestTelemetry(b *testing.B) {
	r := newRigObserving(b, IngestOptions{}, false)
	const devicesN = 100
	var list []devices.Device
	for i := range devicesN {
		list = append(list, devices.Device{ID: fmt.Sprintf("bench-%03d", i), Station: "ys-001",
			Kind: schemas.KindAC})
	}
	if _, err := r.reg.Provision(list); err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"power":true,"mode":"cool","setpoint_c":26,"room_c":28.4,"outdoor_c":35.1,` +
		`"humidity_pct":71,"power_w":1150,"fault":"","ts":1784000000000,"seq":1}`)
	okBefore := r.count("telemetry", ResultOK)

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := b.N/devicesN + 1
	for i := range devicesN {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := schemas.DeviceTopic("ys-001", list[i].ID, schemas.ChannelTelemetry)
			for range per {
				for r.in.QueueDepth() > 8192 {
					runtime.Gosched()
				}
				_ = r.bus.Publish(topic, 0, false, payload)
			}
		}()
	}
	wg.Wait()
	want := float64(per * devicesN)
	for r.count("telemetry", ResultOK)-okBefore+r.count("telemetry", ResultDropped) < want {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric((r.count("telemetry", ResultOK)-okBefore)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(r.count("telemetry", ResultDropped), "dropped")
}
