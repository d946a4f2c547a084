package controller

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// benchNotices measures, for each notice, the time since its device sent
// the message that caused it. Every message of the benchmark changes an
// alert (raise, resolve, reopen, in turn), so notices and messages pair up
// in order, per device.
type benchNotices struct {
	mu      sync.Mutex
	pending map[string][]time.Time // send times, by device
	lat     []time.Duration
	want    int
	done    chan struct{}
}

func (bn *benchNotices) sent(device string, at time.Time) {
	bn.mu.Lock()
	bn.pending[device] = append(bn.pending[device], at)
	bn.mu.Unlock()
}

func (bn *benchNotices) Notify(n Notice) {
	at := time.Now()
	a := n.Data.(Alert)
	bn.mu.Lock()
	defer bn.mu.Unlock()
	q := bn.pending[a.Device]
	if len(q) == 0 {
		return
	}
	bn.lat = append(bn.lat, at.Sub(q[0]))
	bn.pending[a.Device] = q[1:]
	if len(bn.lat) == bn.want {
		close(bn.done)
	}
}

// BenchmarkAlertLatency drives 100 ACs (paho clients over TCP) through the
// embedded broker, ingest and the alert rules at 5,000 messages a second
// in all. The ACs that flip send telemetry alternately with and without a
// fault, so each of their messages raises, resolves or reopens an alert,
// which is written to bbolt and then told; the others report that all is
// well. The figure is the time from a flipping AC publishing to the notice
// of its alert. Run with a fixed count: -benchtime 25000x is five seconds.
func BenchmarkAlertLatency(b *testing.B) {
	b.Run("changes=all", func(b *testing.B) { benchAlertLatency(b, 100) })
	b.Run("changes=1in10", func(b *testing.B) { benchAlertLatency(b, 10) })
}

func benchAlertLatency(b *testing.B, flipping int) {
	const (
		acs      = 100
		ratePerS = 5000
		interval = time.Second / ratePerS
		wait     = 20 * time.Second
	)
	var extra []devices.Device
	for i := range acs {
		extra = append(extra, devices.Device{ID: fmt.Sprintf("bench-ac-%03d", i), Station: "ys-b",
			Kind: schemas.KindAC})
	}
	changes := 0
	for n := range b.N {
		if n%acs < flipping {
			changes++
		}
	}
	bn := &benchNotices{pending: map[string][]time.Time{}, want: changes, done: make(chan struct{})}
	r := newAlertRig(b, alertRigOptions{extra: extra, realClock: true,
		alerts: func(o *AlertOptions) { o.Notifier = bn }})
	clients := make([]mqtt.Client, acs)
	for i := range clients {
		clients[i] = r.connect(b, extra[i].ID).c
	}
	r.settle(b)
	payloads := [2][]byte{[]byte(acTelem(true, "cool", 26, 27, "E4")),
		[]byte(acTelem(true, "cool", 26, 27, ""))}

	b.ResetTimer()
	start := time.Now()
	for n := range b.N {
		// Open loop: messages leave on schedule whatever the alerts do.
		time.Sleep(time.Until(start.Add(time.Duration(n) * interval)))
		i := n % acs
		p := payloads[1]
		if i < flipping {
			p = payloads[(n/acs)%2]
			bn.sent(extra[i].ID, time.Now())
		}
		clients[i].Publish(schemas.DeviceTopic("ys-b", extra[i].ID, schemas.ChannelTelemetry), 1,
			false, p)
	}
	if changes == 0 {
		return
	}
	select {
	case <-bn.done:
	case <-time.After(wait):
		bn.mu.Lock()
		defer bn.mu.Unlock()
		b.Fatalf("%d of %d notices after %v", len(bn.lat), changes, wait)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	bn.mu.Lock()
	defer bn.mu.Unlock()
	lat := bn.lat
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
	b.ReportMetric(float64(changes)/elapsed.Seconds(), "changes/s")
}

// BenchmarkAlertObserve is the rules' cost per message, without the
// broker: an AC's telemetry, alternately with and without a fault.
func BenchmarkAlertObserve(b *testing.B) {
	r := newAlertRig(b, alertRigOptions{realClock: true,
		alerts: func(o *AlertOptions) { o.Notifier = nil; o.Bus = nil }})
	d, _ := r.reg.Device("ys-b-ac")
	tms := [2]*schemas.Telemetry{}
	for i, fault := range []string{"E4", ""} {
		tm, err := schemas.DecodeTelemetry(schemas.KindAC, []byte(acTelem(true, "cool", 26, 27, fault)))
		if err != nil {
			b.Fatal(err)
		}
		tms[i] = &tm
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := range b.N {
		r.alerts.Observe(Observation{Device: d, Channel: schemas.ChannelTelemetry, At: time.Now(),
			Telem: tms[n/8%2]})
	}
}
