package controller

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/waystation/waystation/devices"
)

// eventsRig is the event stream behind a real HTTP server, with two
// stations of two organisations and an operator for each scope.
type eventsRig struct {
	ev    *Events
	srv   *httptest.Server
	ops   *Operators
	prom  *prometheus.Registry
	admin string // every organisation
	north string // a monitor of organisation "north" (station ys-001)
	south string // a monitor of organisation "south" (station ys-002)
	stop  context.CancelFunc
	done  chan struct{}
}

func newEventsRig(t testing.TB, o EventsOptions) *eventsRig {
	t.Helper()
	db, err := devices.OpenDB(filepath.Join(t.TempDir(), "w.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := devices.NewRegistry(db, devices.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	twins, err := devices.NewTwins(db, devices.TwinsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []devices.Station{
		{ID: "ys-001", Name: "North", Lat: 32.6, Lon: 116.3, Hours: "24h", Org: "north"},
		{ID: "ys-002", Name: "South", Lat: 31.6, Lon: 116.3, Hours: "24h", Org: "south"},
	} {
		if _, err := reg.AddStation(st); err != nil {
			t.Fatal(err)
		}
	}
	x := &eventsRig{prom: prometheus.NewRegistry(), done: make(chan struct{})}
	if x.ops, err = NewOperators(db, nil); err != nil {
		t.Fatal(err)
	}
	for _, op := range []struct {
		token *string
		op    Operator
	}{
		{&x.admin, Operator{Name: "night-desk", Role: RoleAdmin, Orgs: []string{AllOrgs}}},
		{&x.north, Operator{Name: "north-desk", Role: RoleMonitor, Orgs: []string{"north"}}},
		{&x.south, Operator{Name: "south-desk", Role: RoleMonitor, Orgs: []string{"south"}}},
	} {
		if *op.token, _, err = x.ops.Issue(op.op); err != nil {
			t.Fatal(err)
		}
	}
	o.Registry, o.Registerer = reg, x.prom
	if x.ev, err = NewEvents(o); err != nil {
		t.Fatal(err)
	}
	api, err := NewAPI(APIOptions{Registry: reg, Twins: twins, Operators: x.ops, Events: x.ev,
		Registerer: x.prom})
	if err != nil {
		t.Fatal(err)
	}
	x.srv = httptest.NewServer(api)
	ctx, stop := context.WithCancel(context.Background())
	x.stop = stop
	go func() {
		defer close(x.done)
		x.ev.Run(ctx)
	}()
	t.Cleanup(x.close)
	return x
}

// close stops the hub and then the server, as serve does.
func (x *eventsRig) close() {
	x.stop()
	<-x.done
	x.srv.Close()
}

// sseEvent is one event read off a stream.
type sseEvent struct {
	id, name string
	notice   Notice
	raw      string
}

// sseStream is an open GET /api/v1/events.
type sseStream struct {
	resp   *http.Response
	cancel context.CancelFunc
	events chan sseEvent // closed when the stream ends
	beats  chan struct{} // a comment line arrived
}

func (x *eventsRig) open(t *testing.T, token, lastID string) *sseStream {
	t.Helper()
	return x.openPath(t, token, "/api/v1/events", lastID)
}

func (x *eventsRig) openPath(t *testing.T, token, path, lastID string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", x.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := x.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /api/v1/events: HTTP %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	s := &sseStream{resp: resp, cancel: cancel, events: make(chan sseEvent, 1024),
		beats: make(chan struct{}, 1024)}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
	for range s.events { // until read returns
	}
}

// read parses the stream as an EventSource would.
func (s *sseStream) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(data) > 0 {
				ev.raw = strings.Join(data, "\n")
				if ev.name == "" {
					_ = json.Unmarshal([]byte(ev.raw), &ev.notice)
				}
				s.events <- ev
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
			select {
			case s.beats <- struct{}{}:
			default:
			}
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		}
	}
}

// next returns the next event, failing the test after a while.
func (s *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	return sseEvent{}
}

// none checks that no event arrives within a short while.
func (s *sseStream) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if ok {
			t.Fatalf("unexpected event %+v", ev)
		}
	case <-time.After(within):
	}
}

// ended waits for the server to end the stream.
func (s *sseStream) ended(t *testing.T) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the stream did not end")
		}
	}
}

func notice(i int, station string) Notice {
	return Notice{Type: "alert.raised", Key: fmt.Sprintf("alert-%d.raised", i), Station: station,
		At: time.Date(2025, 7, 20, 3, 0, i, 0, time.UTC), Data: map[string]any{"n": i}}
}

// waitSubscribers waits until the hub has n open streams.
func (x *eventsRig) waitSubscribers(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d subscribers", n), func() bool {
		return testutil.ToFloat64(x.ev.subscribers) == float64(n)
	})
}

func TestEventsLiveAndScoped(t *testing.T) {
	x := newEventsRig(t, EventsOptions{})
	all := x.open(t, x.admin, "")
	north := x.open(t, x.north, "")
	south := x.open(t, x.south, "")
	x.waitSubscribers(t, 3)

	x.ev.Notify(notice(1, "ys-001"))
	x.ev.Notify(notice(2, "ys-002"))
	x.ev.Notify(notice(3, ""))        // belongs to no organisation
	x.ev.Notify(notice(4, "ys-gone")) // a station not (or no longer) registered

	for i := 1; i <= 4; i++ {
		ev := all.next(t)
		if ev.notice.Key != notice(i, "").Key || ev.id == "" {
			t.Fatalf("admin's event %d: %+v", i, ev)
		}
		if ev.notice.Type != "alert.raised" || !ev.notice.At.Equal(notice(i, "").At) {
			t.Fatalf("notice did not survive the stream: %+v", ev.notice)
		}
	}
	if ev := north.next(t); ev.notice.Key != "alert-1.raised" || ev.notice.Station != "ys-001" {
		t.Fatalf("north got %+v", ev)
	}
	if ev := south.next(t); ev.notice.Key != "alert-2.raised" {
		t.Fatalf("south got %+v", ev)
	}
	north.none(t, 100*time.Millisecond)
	south.none(t, 0)
	if got := testutil.ToFloat64(x.ev.sent); got != 4 {
		t.Fatalf("events_total %v, want 4", got)
	}
}

// TestEventsOutlastReadTimeout: a stream stays open past the server's read
// timeout, which bounds reading requests, not how long a stream lasts.
func TestEventsOutlastReadTimeout(t *testing.T) {
	x := newEventsRig(t, EventsOptions{})
	// As serve runs it: a read timeout, and none for writes.
	srv := httptest.NewUnstartedServer(x.srv.Config.Handler)
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close) // after the stream closes
	s := (&eventsRig{srv: srv}).open(t, x.admin, "")
	x.waitSubscribers(t, 1)
	time.Sleep(3 * srv.Config.ReadTimeout) // what is measured is time itself
	x.ev.Notify(notice(1, "ys-001"))
	if ev := s.next(t); ev.notice.Key != "alert-1.raised" {
		t.Fatalf("got %+v", ev)
	}
}

func TestEventsFiltered(t *testing.T) {
	x := newEventsRig(t, EventsOptions{})
	for _, tc := range []struct {
		token, path string
		code        int
	}{
		{"", "/api/v1/events", http.StatusUnauthorized},
		{x.north, "/api/v1/events?station=ys-002", http.StatusForbidden},
		{x.admin, "/api/v1/events?station=ys-404", http.StatusNotFound},
	} {
		if code, body := call(t, x.srv, tc.token, "GET", tc.path, ""); code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.path, code, body, tc.code)
		}
	}

	s := x.openPath(t, x.admin, "/api/v1/events?station=ys-002&type=alert", "")
	x.waitSubscribers(t, 1)
	for i, n := range []Notice{notice(1, "ys-001"), notice(2, "ys-002"),
		{Type: "command.acknowledged", Key: "c3", Station: "ys-002"},
		{Type: "alerting.other", Key: "c4", Station: "ys-002"}, notice(5, "ys-002")} {
		n.At = time.Unix(int64(i), 0)
		x.ev.Notify(n)
	}
	for _, want := range []string{"alert-2.raised", "alert-5.raised"} {
		if ev := s.next(t); ev.notice.Key != want {
			t.Fatalf("got %+v, want %s", ev, want)
		}
	}
	s.none(t, 50*time.Millisecond)

	// Replay follows the filter too.
	again := x.openPath(t, x.admin, "/api/v1/events?type=command", x.ev.id(1))
	if ev := again.next(t); ev.notice.Key != "c3" {
		t.Fatalf("replayed %+v, want c3", ev)
	}
}

func TestEventsReplayFromLastEventID(t *testing.T) {
	x := newEventsRig(t, EventsOptions{Replay: 5})
	first := x.open(t, x.north, "")
	x.waitSubscribers(t, 1)
	x.ev.Notify(notice(1, "ys-001"))
	seen := first.next(t)
	first.close()
	x.waitSubscribers(t, 0)

	// Missed while away: two of its own, one of another organisation.
	x.ev.Notify(notice(2, "ys-001"))
	x.ev.Notify(notice(3, "ys-002"))
	x.ev.Notify(notice(4, "ys-001"))
	back := x.open(t, x.north, seen.id)
	for _, want := range []string{"alert-2.raised", "alert-4.raised"} {
		if ev := back.next(t); ev.notice.Key != want || ev.name != "" {
			t.Fatalf("replayed %+v, want %s", ev, want)
		}
	}
	x.ev.Notify(notice(5, "ys-001"))
	if ev := back.next(t); ev.notice.Key != "alert-5.raised" {
		t.Fatalf("live after replay: %+v", ev)
	}

	// Away for longer than the ring holds: a gap, then what is kept.
	for i := 6; i <= 12; i++ {
		x.ev.Notify(notice(i, "ys-001"))
	}
	late := x.open(t, x.admin, seen.id)
	if ev := late.next(t); ev.name != "gap" {
		t.Fatalf("want a gap event first, got %+v", ev)
	}
	for i := 8; i <= 12; i++ {
		if ev := late.next(t); ev.notice.Key != notice(i, "").Key {
			t.Fatalf("replayed %+v, want alert-%d", ev, i)
		}
	}

	// An id from an earlier run of the server: a gap and everything kept.
	stale := x.open(t, x.admin, "0abc-3")
	if ev := stale.next(t); ev.name != "gap" {
		t.Fatalf("stale id: %+v", ev)
	}
	if ev := stale.next(t); ev.notice.Key != "alert-8.raised" {
		t.Fatalf("stale id replayed %+v first", ev)
	}
}

func TestEventsSlowSubscriberDropped(t *testing.T) {
	x := newEventsRig(t, EventsOptions{Queue: 4})
	// A subscriber that stops reading: once the socket buffers are full,
	// its handler blocks in Write and its queue fills.
	req, _ := http.NewRequest("GET", x.srv.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+x.admin)
	resp, err := x.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	fast := x.open(t, x.south, "")
	x.waitSubscribers(t, 2)

	big := strings.Repeat("x", 16<<10)
	start := time.Now()
	for i := 1; testutil.ToFloat64(x.ev.dropped.WithLabelValues(dropSlow)) == 0; i++ {
		if i > 5000 {
			t.Fatal("the subscriber that does not read was never dropped")
		}
		n := notice(i, "ys-001")
		n.Data = big
		x.ev.Notify(n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Notify took %v in all with a slow subscriber", d)
	}
	x.waitSubscribers(t, 1)

	// The others still get theirs.
	x.ev.Notify(notice(1, "ys-002"))
	if ev := fast.next(t); ev.notice.Key != "alert-1.raised" {
		t.Fatalf("got %+v", ev)
	}
}

func TestEventsHeartbeatAndRevocation(t *testing.T) {
	x := newEventsRig(t, EventsOptions{Heartbeat: 20 * time.Millisecond})
	s := x.open(t, x.north, "")
	for range 2 {
		select {
		case <-s.beats:
		case <-time.After(5 * time.Second):
			t.Fatal("no heartbeat")
		}
	}
	if _, err := x.ops.Revoke("north-desk"); err != nil {
		t.Fatal(err)
	}
	s.ended(t)
	x.waitSubscribers(t, 0)
	if got := testutil.ToFloat64(x.ev.dropped.WithLabelValues(dropScope)); got != 1 {
		t.Fatalf("dropped auth %v, want 1", got)
	}
}

// TestEventsShutdownAndDisconnect: a client that goes away frees its
// subscription and handler; stopping the hub ends every stream so the HTTP
// server shuts down without waiting, and no goroutine is left.
func TestEventsShutdownAndDisconnect(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	x := newEventsRig(t, EventsOptions{})
	gone := x.open(t, x.admin, "")
	stays := x.open(t, x.south, "")
	x.waitSubscribers(t, 2)

	gone.close()
	x.waitSubscribers(t, 1)
	x.ev.Notify(notice(1, "ys-002"))
	if ev := stays.next(t); ev.notice.Key != "alert-1.raised" {
		t.Fatalf("got %+v", ev)
	}

	// Shut the server down as serve does: the hub first, then Shutdown,
	// which would wait for the open stream if the hub left it open.
	x.stop()
	<-x.done
	stays.ended(t)
	if code, body := call(t, x.srv, x.admin, "GET", "/api/v1/events", ""); code != 503 {
		t.Fatalf("a stream after stopping: %d %s", code, body)
	}
	x.ev.Notify(notice(2, "ys-002")) // after stopping: dropped, never blocks
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := x.srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	x.srv.Close()
}
