package controller

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/internal/mosquitto"
	"github.com/waystation/waystation/schemas"
)

// BenchmarkIngestViaMosquitto measures the whole pipeline with an external
// broker: devices (4 paho connections, QoS 1) publish telemetry to Debian's
// Mosquitto, which relays it to the controller's MQTTBus; ingest decodes it
// and updates the twins. "wildcard" is one controller subscribed to every
// station; "partition" is a controller of partition 1/2 holding per-station
// filters for 1,000 stations (the stations of the devices are its own).
func BenchmarkIngestViaMosquitto(b *testing.B) {
	for _, c := range []struct {
		name     string
		part     Partition
		stations int
	}{{"wildcard", Partition{}, 10}, {"partition", Partition{Index: 1, Count: 2}, 2000}} {
		b.Run(c.name, func(b *testing.B) { benchIngestViaMosquitto(b, c.part, c.stations) })
	}
}

// BenchmarkMosquittoRelay is the reference for BenchmarkIngestViaMosquitto:
// the same load through the same Mosquitto to a plain paho subscriber that
// only counts.
func BenchmarkMosquittoRelay(b *testing.B) {
	m := mosquitto.Start(b, mosquitto.Config{Extra: []string{"max_queued_messages 1000000",
		"max_inflight_messages 1000"}})
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID("sub").
		SetAutoReconnect(false).SetOrderMatters(true))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	defer sub.Disconnect(50)
	var mu sync.Mutex
	n := 0
	if tok := sub.Subscribe(schemas.DeviceFilter(schemas.ChannelTelemetry), 1,
		func(mqtt.Client, mqtt.Message) { mu.Lock(); n++; mu.Unlock() }); !tok.WaitTimeout(5 * time.Second) {
		b.Fatal("subscribe")
	}
	var list []devices.Device
	for i := range 100 {
		list = append(list, devices.Device{ID: fmt.Sprintf("d-%03d", i), Station: "st-0001"})
	}
	count := func() float64 { mu.Lock(); defer mu.Unlock(); return float64(n) }
	b.ResetTimer()
	start := time.Now()
	want := publishLoad(b, m, list, b.N)
	deadline := time.Now().Add(time.Minute)
	for count() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%v of %v messages relayed after a minute", count(), want)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(count()/time.Since(start).Seconds(), "msgs/s")
}

// publishLoad publishes about n telemetry messages (QoS 1) of the devices
// in list over 4 connections, each with 64 unacknowledged at most, and
// returns how many it sent.
func publishLoad(b *testing.B, m *mosquitto.Broker, list []devices.Device, n int) float64 {
	const conns = 4
	var pubs []mqtt.Client
	for i := range conns {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).
			SetClientID(fmt.Sprintf("pub-%d", i)).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		defer c.Disconnect(50)
		pubs = append(pubs, c)
	}
	payload := []byte(`{"power":true,"mode":"cool","setpoint_c":26,"room_c":28.4,"outdoor_c":35.1,` +
		`"humidity_pct":71,"power_w":1150,"fault":"","ts":1784000000000,"seq":1}`)
	per := n/conns + 1
	var wg sync.WaitGroup
	for i, c := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			window := make(chan mqtt.Token, 64)
			for j := range per {
				d := list[(i+j*conns)%len(list)]
				if len(window) == cap(window) {
					(<-window).Wait()
				}
				window <- c.Publish(schemas.DeviceTopic(d.Station, d.ID, schemas.ChannelTelemetry),
					1, false, payload)
			}
			for len(window) > 0 {
				(<-window).Wait()
			}
		}()
	}
	wg.Wait()
	return float64(per * conns)
}

func benchIngestViaMosquitto(b *testing.B, part Partition, stations int) {
	// Mosquitto's defaults would drop what passes 1,000 messages queued
	// for the controller (see the README on configuring the broker).
	m := mosquitto.Start(b, mosquitto.Config{Extra: []string{"max_queued_messages 1000000",
		"max_inflight_messages 1000"}})
	db, err := devices.OpenDB(filepath.Join(b.TempDir(), "w.db"), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	reg, err := devices.NewRegistry(db, devices.RegistryOptions{Owner: part.Check})
	if err != nil {
		b.Fatal(err)
	}
	twins, err := devices.NewTwins(db, devices.TwinsOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var sts []devices.Station
	var list []devices.Device
	for i := range stations {
		id := fmt.Sprintf("st-%04d", i)
		if !part.Owns(id) {
			continue
		}
		sts = append(sts, devices.Station{ID: id, Name: id, Lat: 32, Lon: 116, Hours: "24h"})
		if len(list) < 100 {
			list = append(list, devices.Device{ID: id + "-ac", Station: id, Kind: schemas.KindAC})
		}
	}
	if err := reg.AddStations(sts); err != nil {
		b.Fatal(err)
	}
	if _, err := reg.Provision(list); err != nil {
		b.Fatal(err)
	}
	bus, err := DialMQTTBus(MQTTBusOptions{URL: m.URL(), Username: "ctl", Password: "pw"})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	prom := prometheus.NewRegistry()
	in, err := NewIngest(IngestOptions{Bus: bus, Registry: reg, Twins: twins, Registerer: prom,
		Partition: part})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-in.Ready()

	ok := func() float64 {
		return testutil.ToFloat64(in.messages.WithLabelValues("telemetry", ResultOK))
	}

	b.ResetTimer()
	start := time.Now()
	want := publishLoad(b, m, list, b.N)
	deadline := time.Now().Add(time.Minute)
	for ok() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%v of %v messages handled after a minute", ok(), want)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(ok()/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(testutil.ToFloat64(bus.subscribed), "filters")
	b.ReportMetric(testutil.ToFloat64(in.messages.WithLabelValues("telemetry", ResultDropped)),
		"dropped")
}
