package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/waystation/waystation/controller"
)

// TestServeWebhook: serve --webhook delivers notices, retries a receiver
// that fails, and keeps what it could not deliver across a restart.
func TestServeWebhook(t *testing.T) {
	var mu sync.Mutex
	keys := map[string]int{}
	failing := true
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n controller.Notice
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &n); err != nil || r.Header.Get("Idempotency-Key") != n.Key {
			t.Errorf("bad delivery %s (key header %q)", raw, r.Header.Get("Idempotency-Key"))
		}
		mu.Lock()
		defer mu.Unlock()
		if failing {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		keys[n.Key]++
	}))
	defer recv.Close()
	host := strings.TrimPrefix(recv.URL, "http://")
	delivered := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range keys {
			out[k] = v
		}
		return out
	}

	data := t.TempDir()
	edit := func(o *serveOptions) {
		o.data = data
		o.notify.webhooks = []string{recv.URL + "/hook"}
	}
	ts := startServer(t, edit)
	ts.s.notify.Notify(controller.Notice{Type: "alert.raised", Key: "a1", At: time.Now()})
	eventually(t, 5*time.Second, "a failed attempt", func() bool {
		return ts.metric(t, "waystation_notifications_failed_total", "receiver", host) >= 1
	})
	ts.stop(t)

	mu.Lock()
	failing = false
	mu.Unlock()
	ts = startServer(t, edit)
	ts.s.notify.Notify(controller.Notice{Type: "alert.raised", Key: "a2", At: time.Now()})
	eventually(t, 10*time.Second, "both delivered", func() bool { return len(delivered()) == 2 })
	if got := delivered(); got["a1"] != 1 || got["a2"] != 1 {
		t.Fatalf("delivered %v, want a1 and a2 once", got)
	}
	eventually(t, 5*time.Second, "sent counted", func() bool {
		return ts.metric(t, "waystation_notifications_sent_total", "receiver", host) == 2
	})
}

func TestServeWebhookRefusesBadURL(t *testing.T) {
	for _, bad := range []string{"ftp://example.com/", "hooks.example.com", "http://:80/"} {
		o := serveOptions{data: t.TempDir(), mqttAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0",
			maxPacketBytes: 64 << 10, timeZone: "UTC"}
		o.notify.webhooks = []string{bad}
		_, err := openServer(o, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "--webhook") ||
			!strings.Contains(err.Error(), bad) {
			t.Errorf("--webhook %s: %v", bad, err)
		}
	}
}
