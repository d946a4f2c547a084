package controller

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/waystation/waystation/devices"
)

// BenchmarkWebhookDelivery measures one local receiver getting notices
// through the outbox: "burst" hands b.N notices over at once and reports
// the rate they are delivered at; "one at a time" waits for each before
// the next and reports the time from Notify to acceptance (outbox write,
// request, answer).
func BenchmarkWebhookDelivery(b *testing.B) {
	b.Run("burst", func(b *testing.B) {
		w, got := benchWebhooks(b)
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			w.Notify(benchNotice(i))
			if i%1000 == 999 {
				time.Sleep(time.Millisecond) // the intake holds 4,096
			}
		}
		for range b.N {
			<-got
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "notices/s")
	})
	b.Run("one at a time", func(b *testing.B) {
		w, got := benchWebhooks(b)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			w.Notify(benchNotice(i))
			lat = append(lat, <-got)
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	})
}

func benchNotice(i int) Notice {
	return Notice{Type: "alert.raised", Key: fmt.Sprintf("k%d", i), Station: "ys-001",
		At: time.Now(), Data: map[string]any{"alert": i, "severity": "critical"}}
}

// benchWebhooks runs Webhooks with one receiver, which sends the time from
// each notice to its arrival on got.
func benchWebhooks(b *testing.B) (*Webhooks, chan time.Duration) {
	got := make(chan time.Duration, b.N)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n Notice
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &n); err != nil {
			b.Error(err)
		}
		got <- time.Since(n.At)
	}))
	b.Cleanup(recv.Close)
	db, err := devices.OpenDB(filepath.Join(b.TempDir(), "w.db"), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	w, err := NewWebhooks(WebhooksOptions{DB: db, URLs: []string{recv.URL}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			b.Error(err)
		}
	})
	return w, got
}

// BenchmarkEventsFanout puts notices on the live stream of 100 subscribers
// over real HTTP connections, one notice at a time, and reports the time
// until the last subscriber has it.
func BenchmarkEventsFanout(b *testing.B) {
	const subs = 100
	x := newEventsRig(b, EventsOptions{})
	arrived := make(chan struct{}, subs)
	for range subs {
		req, _ := http.NewRequest("GET", x.srv.URL+"/api/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+x.admin)
		resp, err := x.srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		go func() {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: ") {
					arrived <- struct{}{}
				}
			}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(x.ev.subscribers) < subs; {
		if time.Now().After(deadline) {
			b.Fatal("the subscribers did not all connect")
		}
		time.Sleep(time.Millisecond)
	}

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		x.ev.Notify(notice(i, "ys-001"))
		for range subs {
			<-arrived
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
