package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/schemas"
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

func TestServeWebhookSecretFile(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	good := filepath.Join(dir, "good")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	os.WriteFile(good, []byte("0123456789abcdef0123\n"), 0o600)
	sigs := make(chan string, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sig := r.Header.Get(controller.SignatureHeader)
		ts, _, _ := strings.Cut(strings.TrimPrefix(sig, "t="), ",")
		unix, _ := strconv.ParseInt(ts, 10, 64)
		if sig != controller.Sign([]byte("0123456789abcdef0123"), time.Unix(unix, 0), body) {
			t.Errorf("signature %q does not match the body", sig)
		}
		sigs <- sig
	}))
	defer recv.Close()

	for _, tc := range []struct {
		file, hooks, want string
	}{
		{filepath.Join(dir, "missing"), recv.URL, "no such file"},
		{short, recv.URL, "at least 16"},
		{good, "", "needs --webhook"},
	} {
		o := serveOptions{data: t.TempDir(), mqttAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0",
			maxPacketBytes: 64 << 10, timeZone: "UTC"}
		o.notify.secretFile = tc.file
		if tc.hooks != "" {
			o.notify.webhooks = []string{tc.hooks}
		}
		s, err := openServer(o, slog.New(slog.DiscardHandler))
		if err == nil {
			s.close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.file, err, tc.want)
		}
	}

	ts := startServer(t, func(o *serveOptions) {
		o.notify.webhooks = []string{recv.URL}
		o.notify.secretFile = good
	})
	ts.s.notify.Notify(controller.Notice{Type: "alert.raised", Key: "a1", At: time.Now()})
	select {
	case sig := <-sigs:
		if !strings.Contains(sig, ",v1=") {
			t.Fatalf("signature %q", sig)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing delivered")
	}
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

// TestAlertToWebhookAndStream: an AED cabinet opened, published by a
// third-party client, reaches a webhook receiver that fails three times
// and then accepts (delivered once by key, after three retries on the
// controller's clock), and a terminal following `waystation events`.
func TestAlertToWebhookAndStream(t *testing.T) {
	requireMosquitto(t)
	var mu sync.Mutex
	attempts := map[string]int{} // by key, of alert.raised notices
	accepted := map[string]int{}
	var raised controller.Notice
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n controller.Notice
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &n); err != nil || r.Header.Get("Idempotency-Key") != n.Key {
			t.Errorf("bad delivery %s", raw)
		}
		mu.Lock()
		defer mu.Unlock()
		if n.Type != controller.NoticeAlertRaised {
			return // other changes are accepted and not counted
		}
		if attempts[n.Key]++; attempts[n.Key] <= 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		accepted[n.Key]++
		raised = n
	}))
	defer recv.Close()

	// At 20 times the wall clock the waits of 1, 2 and 4 s take 0.35 s.
	ts := startServer(t, func(o *serveOptions) {
		o.notify.webhooks = []string{recv.URL}
		o.speed = 20
	})
	secret := ts.register(t, "ys-001", "ys-001-aed", schemas.KindAED)

	var out, errs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runCLIContext(context.Background(), &out, &errs, "events", "--count", "1",
			"--server", ts.url, "--token", ts.token)
	}()
	eventually(t, 5*time.Second, "the terminal subscribed", func() bool {
		return ts.metric(t, "waystation_events_subscribers") == 1
	})

	mosquittoPub(t, ts.mqtt, "ys-001-aed", secret,
		schemas.DeviceTopic("ys-001", "ys-001-aed", schemas.ChannelEvent), `{"type":"cabinet_opened"}`)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("events: %v\n%s", err, errs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal got no notice")
	}
	if line := out.String(); !strings.Contains(line, "alert.raised") ||
		!strings.Contains(line, "ys-001") || !strings.Contains(line, "AED taken") {
		t.Fatalf("the terminal printed %q", line)
	}

	eventually(t, 10*time.Second, "the alert accepted by the receiver", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	for key, n := range accepted {
		if n != 1 || attempts[key] != 4 {
			t.Fatalf("%s accepted %d times after %d attempts, want once after 4", key, n,
				attempts[key])
		}
	}
	if raised.Station != "ys-001" || !strings.Contains(string(mustJSON(t, raised.Data)),
		"aed.cabinet_opened") {
		t.Fatalf("delivered %+v", raised)
	}
	host := strings.TrimPrefix(recv.URL, "http://")
	if got := ts.metric(t, "waystation_notifications_retried_total", "receiver", host); got < 3 {
		t.Fatalf("retried %v, want at least 3", got)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	buf, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}
