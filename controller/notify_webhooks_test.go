package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
)

// hookReceiver is a webhook receiver on a real HTTP server that records
// what it is sent and fails on demand.
type hookReceiver struct {
	srv   *httptest.Server
	clock *fakeClock // read at each attempt

	mu       sync.Mutex
	attempts int
	accepted []string       // keys, in the order accepted
	byKey    map[string]int // acceptances per key
	at       []time.Time    // the clock at each attempt
	fail     int            // attempts still to fail
	status   func(key string) int
	hang     bool // hold every request until the client gives up
	problems []string
}

func newHookReceiver(t *testing.T, clock *fakeClock) *hookReceiver {
	t.Helper()
	h := &hookReceiver{clock: clock, byKey: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var n Notice
	err := json.Unmarshal(body, &n)

	h.mu.Lock()
	h.attempts++
	h.at = append(h.at, h.clock.Now())
	switch {
	case err != nil:
		h.problems = append(h.problems, "body is not a notice: "+string(body))
	case r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json":
		h.problems = append(h.problems, "not a JSON POST: "+r.Method)
	case n.Key == "" || r.Header.Get("Idempotency-Key") != n.Key:
		h.problems = append(h.problems, fmt.Sprintf("Idempotency-Key %q, body key %q",
			r.Header.Get("Idempotency-Key"), n.Key))
	}
	hang := h.hang
	status := http.StatusNoContent
	if h.status != nil {
		status = h.status(n.Key)
	}
	if h.fail > 0 {
		h.fail--
		status = http.StatusServiceUnavailable
	}
	if !hang && status < 300 {
		h.accepted = append(h.accepted, n.Key)
		h.byKey[n.Key]++
	}
	h.mu.Unlock()

	if hang {
		<-r.Context().Done()
		return
	}
	w.WriteHeader(status)
}

// snapshot returns the accepted keys and the number of attempts.
func (h *hookReceiver) snapshot() ([]string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.accepted), h.attempts
}

func (h *hookReceiver) set(f func(h *hookReceiver)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

// check fails the test for any malformed request the receiver saw.
func (h *hookReceiver) check(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.problems {
		t.Error(p)
	}
}

// hookRig runs Webhooks on a real bbolt file and a fake clock.
type hookRig struct {
	db    *bolt.DB
	clock *fakeClock
}

func newHookRig(t *testing.T) *hookRig {
	t.Helper()
	db, err := devices.OpenDB(filepath.Join(t.TempDir(), "w.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &hookRig{db: db, clock: &fakeClock{t: time.Date(2025, 7, 20, 3, 0, 0, 0, time.UTC)}}
}

// start builds and runs Webhooks; stop ends Run and waits for it.
func (x *hookRig) start(t *testing.T, o WebhooksOptions, urls ...string) (w *Webhooks,
	stop func()) {
	t.Helper()
	o.DB, o.URLs, o.Now = x.db, urls, x.clock.Now
	if o.Poll == 0 {
		o.Poll = 2 * time.Millisecond
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	w, err := NewWebhooks(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Error(err)
				}
			case <-time.After(10 * time.Second):
				t.Error("webhooks did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return w, stop
}

// until advances the clock by step until cond holds, failing after 10 s of
// wall time.
func (x *hookRig) until(t *testing.T, step time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		x.clock.Add(step)
		time.Sleep(2 * time.Millisecond)
	}
}

func hookNotice(i int) Notice {
	return Notice{Type: "alert.raised", Key: fmt.Sprintf("k%d", i), Station: "ys-001",
		At: time.Date(2025, 7, 20, 3, 0, 0, 0, time.UTC), Data: map[string]any{"alert": i}}
}

func (w *Webhooks) count(c *prometheus.CounterVec, url string, extra ...string) float64 {
	for _, r := range w.recvs {
		if r.url.String() == url {
			return testutil.ToFloat64(c.WithLabelValues(append([]string{r.host}, extra...)...))
		}
	}
	panic("no receiver " + url)
}

func (w *Webhooks) pendingOf(url string) float64 {
	for _, r := range w.recvs {
		if r.url.String() == url {
			return testutil.ToFloat64(w.pending.WithLabelValues(r.host))
		}
	}
	panic("no receiver " + url)
}

// TestWebhookRetriedUntilAccepted: a receiver that fails three times, then
// accepts, gets each notice once by key, after backoff on the clock.
func TestWebhookRetriedUntilAccepted(t *testing.T) {
	x := newHookRig(t)
	h := newHookReceiver(t, x.clock)
	h.fail = 3
	w, _ := x.start(t, WebhooksOptions{RetryMin: time.Second, RetryMax: time.Minute,
		Jitter: func() float64 { return 0.5 }}, h.srv.URL)

	for i := 1; i <= 3; i++ {
		w.Notify(hookNotice(i))
	}
	x.until(t, 100*time.Millisecond, "three notices accepted", func() bool {
		got, _ := h.snapshot()
		return len(got) == 3
	})
	h.check(t)
	got, attempts := h.snapshot()
	if !slices.Equal(got, []string{"k1", "k2", "k3"}) {
		t.Fatalf("accepted %v, want k1 k2 k3 once each, in order", got)
	}
	if attempts != 6 {
		t.Fatalf("%d attempts, want 6 (3 failed, 3 accepted)", attempts)
	}

	// Waits of 0.75, 1.5 and 3 s (the upper half of 1, 2, 4 s, jitter
	// 0.5) between the attempts at k1, on the injected clock.
	h.mu.Lock()
	at := slices.Clone(h.at)
	h.mu.Unlock()
	for i, want := range []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond,
		3 * time.Second} {
		// The upper bound leaves room for a worker slow to see the clock move
		// on a busy machine.
		if gap := at[i+1].Sub(at[i]); gap < want || gap > 2*want+2*time.Second {
			t.Errorf("wait before attempt %d: %v, want %v", i+2, gap, want)
		}
	}

	url := h.srv.URL
	waitFor(t, "all three sent", func() bool { return w.count(w.sent, url) == 3 })
	for _, m := range []struct {
		name string
		got  float64
		want float64
	}{
		{"sent", w.count(w.sent, url), 3},
		{"failed", w.count(w.failed, url), 3},
		{"retried", w.count(w.retried, url), 3},
		{"pending", w.pendingOf(url), 0},
	} {
		if m.got != m.want {
			t.Errorf("%s = %v, want %v", m.name, m.got, m.want)
		}
	}
	if n := testutil.CollectAndCount(w.latency); n != 1 {
		t.Fatalf("latency series %d", n)
	}
}

// TestWebhookOutboxSurvivesRestart: what was delivered is not sent again
// after a restart, and what was not is.
func TestWebhookOutboxSurvivesRestart(t *testing.T) {
	x := newHookRig(t)
	h := newHookReceiver(t, x.clock)
	o := WebhooksOptions{RetryMin: time.Second, RetryMax: time.Minute}
	w, stop := x.start(t, o, h.srv.URL)

	w.Notify(hookNotice(1))
	x.until(t, 0, "k1 delivered", func() bool { got, _ := h.snapshot(); return len(got) == 1 })

	// The receiver goes down; two notices wait for it.
	h.set(func(h *hookReceiver) { h.status = func(string) int { return 502 } })
	w.Notify(hookNotice(2))
	w.Notify(hookNotice(3))
	x.until(t, 0, "k2 tried", func() bool { _, n := h.snapshot(); return n >= 2 })
	stop()
	// A notice after Run ended goes to the outbox for the next run.
	w.Notify(hookNotice(4))

	h.set(func(h *hookReceiver) { h.status = nil })
	w2, _ := x.start(t, o, h.srv.URL)
	x.until(t, time.Second, "k2..k4 delivered after the restart", func() bool {
		got, _ := h.snapshot()
		return len(got) == 4
	})
	h.check(t)
	got, _ := h.snapshot()
	if !slices.Equal(got, []string{"k1", "k2", "k3", "k4"}) {
		t.Fatalf("accepted %v, want k1..k4 once each", got)
	}
	waitFor(t, "an empty outbox", func() bool { return w2.pendingOf(h.srv.URL) == 0 })
	// Nothing more comes, however long the clock runs.
	x.clock.Add(time.Hour)
	time.Sleep(50 * time.Millisecond)
	if got, _ := h.snapshot(); len(got) != 4 {
		t.Fatalf("accepted %v after the outbox emptied", got)
	}
}

// TestWebhookHungReceiverDelaysNobody: a receiver that never answers holds
// up neither Notify nor another receiver.
func TestWebhookHungReceiverDelaysNobody(t *testing.T) {
	x := newHookRig(t)
	hung := newHookReceiver(t, x.clock)
	hung.hang = true
	ok := newHookReceiver(t, x.clock)
	w, _ := x.start(t, WebhooksOptions{Timeout: time.Minute}, hung.srv.URL, ok.srv.URL)

	start := time.Now()
	for i := 1; i <= 1000; i++ {
		w.Notify(hookNotice(i))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("1,000 notices took %v to hand over", d)
	}
	waitFor(t, "the healthy receiver got all 1,000", func() bool {
		got, _ := ok.snapshot()
		return len(got) == 1000
	})
	if _, n := hung.snapshot(); n != 1 {
		t.Fatalf("the hung receiver saw %d requests, want the first one, still waiting", n)
	}
	ok.check(t)
}

// TestWebhookOutboxBounded: while a receiver is down its outbox keeps the
// newest notices; the oldest are dropped and counted.
func TestWebhookOutboxBounded(t *testing.T) {
	x := newHookRig(t)
	h := newHookReceiver(t, x.clock)
	h.status = func(string) int { return 500 }
	w, _ := x.start(t, WebhooksOptions{MaxPending: 5}, h.srv.URL)
	for i := 1; i <= 20; i++ {
		w.Notify(hookNotice(i))
	}
	waitFor(t, "15 dropped", func() bool {
		return w.count(w.dropped, h.srv.URL, DropFull) == 15
	})
	if p := w.pendingOf(h.srv.URL); p != 5 {
		t.Fatalf("pending %v, want 5", p)
	}
	h.set(func(h *hookReceiver) { h.status = nil })
	x.until(t, time.Minute, "the five kept delivered", func() bool {
		got, _ := h.snapshot()
		return len(got) == 5
	})
	if got, _ := h.snapshot(); !slices.Equal(got, []string{"k16", "k17", "k18", "k19", "k20"}) {
		t.Fatalf("accepted %v, want k16..k20", got)
	}
}

// TestWebhookGivesUp: a notice older than the maximum age is given up and
// counted; one the receiver refuses for good is dropped at once; the
// receiver's next notices still go.
func TestWebhookGivesUp(t *testing.T) {
	x := newHookRig(t)
	h := newHookReceiver(t, x.clock)
	h.status = func(string) int { return 503 }
	w, _ := x.start(t, WebhooksOptions{MaxAge: time.Hour, RetryMax: time.Minute}, h.srv.URL)

	w.Notify(hookNotice(1))
	x.until(t, 0, "k1 tried", func() bool { _, n := h.snapshot(); return n >= 1 })
	x.until(t, 10*time.Minute, "k1 given up", func() bool {
		return w.count(w.dropped, h.srv.URL, DropExpired) == 1
	})

	h.set(func(h *hookReceiver) {
		h.status = func(key string) int {
			if key == "k2" {
				return http.StatusUnprocessableEntity
			}
			return http.StatusOK
		}
	})
	w.Notify(hookNotice(2))
	w.Notify(hookNotice(3))
	x.until(t, time.Second, "k3 delivered", func() bool {
		got, _ := h.snapshot()
		return slices.Contains(got, "k3")
	})
	if got, _ := h.snapshot(); !slices.Equal(got, []string{"k3"}) {
		t.Fatalf("accepted %v, want only k3", got)
	}
	if n := w.count(w.dropped, h.srv.URL, DropRefused); n != 1 {
		t.Fatalf("refused %v, want 1", n)
	}
	waitFor(t, "an empty outbox", func() bool { return w.pendingOf(h.srv.URL) == 0 })
}

// TestWebhookNoticeWithoutKey: a notice without a key is given one, the
// same in the header and the body.
func TestWebhookNoticeWithoutKey(t *testing.T) {
	x := newHookRig(t)
	h := newHookReceiver(t, x.clock)
	w, _ := x.start(t, WebhooksOptions{}, h.srv.URL)
	w.Notify(Notice{Type: "plan.started", At: x.clock.Now()})
	waitFor(t, "delivered", func() bool { got, _ := h.snapshot(); return len(got) == 1 })
	h.check(t)
	if got, _ := h.snapshot(); !strings.HasPrefix(got[0], "notice-") {
		t.Fatalf("key %q", got[0])
	}
}

// TestWebhookSigned: with a secret, each request carries a signature of its
// body that the receiver can check.
func TestWebhookSigned(t *testing.T) {
	x := newHookRig(t)
	secret := []byte("0123456789abcdef-night-desk")
	sigs := make(chan string, 1)
	bodies := make(chan []byte, 1)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sigs <- r.Header.Get(SignatureHeader)
		bodies <- body
	}))
	defer recv.Close()
	w, _ := x.start(t, WebhooksOptions{Secret: secret}, recv.URL)
	w.Notify(hookNotice(1))
	var sig string
	select {
	case sig = <-sigs:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing delivered")
	}
	body := <-bodies
	ts, _, ok := strings.Cut(strings.TrimPrefix(sig, "t="), ",")
	unix, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || time.Since(time.Unix(unix, 0)).Abs() > time.Minute {
		t.Fatalf("signature %q", sig)
	}
	if want := Sign(secret, time.Unix(unix, 0), body); sig != want {
		t.Fatalf("signature %q, want %q", sig, want)
	}
	if Sign([]byte("another secret, as long"), time.Unix(unix, 0), body) == sig {
		t.Fatal("the signature does not depend on the secret")
	}
	// HMAC-SHA256("0123456789abcdef", "1700000000.{}"), computed apart
	// (Python's hmac module).
	if got := Sign([]byte("0123456789abcdef"), time.Unix(1700000000, 0), []byte("{}")); got !=
		"t=1700000000,v1=e4f8e2ecae2295b2ddb2f0b5584c8275e226c0ebe9b3b819e70156bb67122e3e" {
		t.Fatalf("Sign = %s", got)
	}
	if _, err := NewWebhooks(WebhooksOptions{DB: x.db, URLs: []string{recv.URL},
		Secret: []byte("short")}); err == nil || !strings.Contains(err.Error(), "at least") {
		t.Fatalf("a short secret: %v", err)
	}
}

func TestParseWebhookURL(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"https://hooks.example.com/waystation", ""},
		{"http://127.0.0.1:9000/in?token=x", ""},
		{"ftp://example.com/", "want http:// or https://"},
		{"example.com/hook", "want http:// or https://"},
		{"https:///path", "no host"},
		{"https://example.com/#frag", "fragment"},
		{"http://example.com:99999/", "port"},
		{"http://exa mple.com/", "invalid"},
	} {
		_, err := ParseWebhookURL(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
		}
	}
	if _, err := NewWebhooks(WebhooksOptions{DB: &bolt.DB{}, URLs: []string{"http://a/",
		"http://a/"}}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("the same URL twice: %v", err)
	}
}
