package controller

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/waystation/waystation/schemas"
)

// BenchmarkAccessRoundTrip drives real access requests from 100 door
// terminals (paho clients over TCP) through the embedded broker, ingest
// and the decision, at 1,000 requests a second in all, and measures each
// round trip: from the terminal publishing access/req to it receiving
// access/res. b.N is the number of requests; at the fixed rate, ns/op is
// about 1 ms, and the figures that matter are the reported percentiles.
func BenchmarkAccessRoundTrip(b *testing.B) {
	const (
		terminals  = 100
		ratePerS   = 1000
		interval   = time.Second / ratePerS
		answerWait = 10 * time.Second
	)
	r := newAccessRig(b, rigOptions{locks: terminals, access: func(o *AccessOptions) {
		// The rig's clock stands still: a bucket that never runs dry keeps
		// throttling out of the measurement.
		o.Burst = 1 << 30
	}})
	tok, _ := r.issue(b, "org-a")

	sent := make([]time.Time, b.N)
	rtt := make([]time.Duration, b.N)
	var (
		mu      sync.Mutex
		got     int
		granted int
		done    = make(chan struct{})
	)
	clients := make([]mqtt.Client, terminals)
	for i := range clients {
		id := benchLock(i)
		opts := mqtt.NewClientOptions().AddBroker("tcp://" + r.broker.TCPAddr()).SetClientID(id).
			SetUsername(id).SetPassword(r.secrets[id]).SetAutoReconnect(false).
			SetCleanSession(true).SetOrderMatters(false)
		c := mqtt.NewClient(opts)
		if t := c.Connect(); !t.WaitTimeout(5*time.Second) || t.Error() != nil {
			b.Fatalf("connect %s: %v", id, t.Error())
		}
		b.Cleanup(func() { c.Disconnect(50) })
		topic := schemas.DeviceTopic("ys-a", id, schemas.ChannelAccessRes)
		t := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
			at := time.Now()
			res, err := schemas.DecodeAccessResponse(m.Payload())
			n, perr := strconv.Atoi(strings.TrimPrefix(res.ID, "b"))
			if err != nil || perr != nil || n < 0 || n >= len(sent) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if rtt[n] != 0 {
				return // a QoS 1 duplicate
			}
			rtt[n] = at.Sub(sent[n])
			got++
			if res.Granted {
				granted++
			}
			if got == len(sent) {
				close(done)
			}
		})
		if !t.WaitTimeout(5*time.Second) || t.Error() != nil {
			b.Fatalf("subscribe: %v", t.Error())
		}
		clients[i] = c
	}
	payloads := make([][]byte, b.N)
	for n := range payloads {
		payloads[n], _ = json.Marshal(schemas.AccessRequest{ID: "b" + strconv.Itoa(n),
			Method: schemas.MethodNFC, Token: tok})
	}

	b.ResetTimer()
	start := time.Now()
	for n := range b.N {
		// Open loop: requests leave on schedule whatever the answers do.
		time.Sleep(time.Until(start.Add(time.Duration(n) * interval)))
		i := n % terminals
		topic := schemas.DeviceTopic("ys-a", benchLock(i), schemas.ChannelAccessReq)
		mu.Lock()
		sent[n] = time.Now()
		mu.Unlock()
		clients[i].Publish(topic, 1, false, payloads[n])
	}
	select {
	case <-done:
	case <-time.After(answerWait):
		mu.Lock()
		defer mu.Unlock()
		b.Fatalf("%d of %d answers after %v", got, b.N, answerWait)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	mu.Lock()
	defer mu.Unlock()
	if granted != b.N {
		b.Fatalf("%d of %d granted", granted, b.N)
	}
	slices.Sort(rtt)
	pct := func(p float64) float64 {
		return float64(rtt[min(len(rtt)-1, int(p*float64(len(rtt))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(rtt[len(rtt)-1])/float64(time.Millisecond), "max-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
}
