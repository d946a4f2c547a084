package broker

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestFilterSetCountsLikeMatchFilter checks both ways filterSet matches
// (comparing each filter, and the tree of levels past filterScan filters)
// against matchFilter.
func TestFilterSetCountsLikeMatchFilter(t *testing.T) {
	filters := []string{
		"waystation/v1/+/+/status", "waystation/v1/+/+/telemetry", "waystation/v1/s1/+/status",
		"waystation/v1/s1/d1/status", "waystation/#", "#", "+/broker/uptime", "$SYS/#",
		"a/+", "a/#", "a/b", "+/+", "+", "+/#", "a/b/#", "a//c", "a/+/c", "+/+/+",
		"waystation/v1/s2/+/status", "waystation/v1/+/+/cmd/result", "a/b/c/d/#",
	}
	topics := []string{
		"waystation/v1/s1/d1/status", "waystation/v1/s2/d2/status", "waystation/v1/s1/d1/telemetry",
		"waystation/v1/s1/d1/cmd/result", "waystation/v1/s1/status", "waystation", "waystation/",
		"$SYS/broker/uptime", "$SYS", "a", "a/", "a/b", "a/b/c", "a//c", "a/x/c", "a/b/c/d",
		"a/b/c/d/e", "b", "x/broker/uptime",
	}
	for _, n := range []int{1, 5, filterScan, len(filters)} {
		set := newFilterSet(filters[:n])
		if (set.root != nil) != (n > filterScan) {
			t.Fatalf("%d filters: tree %v, want it past %d", n, set.root != nil, filterScan)
		}
		for _, topic := range topics {
			want := 0
			for _, f := range filters[:n] {
				if matchFilter(f, topic) {
					want++
				}
			}
			if got := set.matches(topic); got != want {
				t.Errorf("%d filters, topic %q: %d match, want %d", n, topic, got, want)
			}
		}
	}
}

// TestBusSubscribeManyReplaysRetained subscribes to overlapping filters in
// one call: each retained message comes once per filter it matches, live
// messages likewise, and a refused filter keeps none of them.
func TestBusSubscribeManyReplaysRetained(t *testing.T) {
	b := start(t, nil).b
	bus := b.Bus()
	defer bus.Close()

	status := func(st, dev string) string { return fmt.Sprintf("waystation/v1/%s/%s/status", st, dev) }
	for i := range 30 {
		if err := bus.Publish(status(fmt.Sprintf("s%d", i%3), fmt.Sprintf("d%d", i)), 1, true,
			[]byte(`{"online":true}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Publish("other/topic", 1, true, []byte("x")); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	got := map[string]int{}
	live := map[string]int{}
	h := func(topic string, _ []byte, retained bool) {
		mu.Lock()
		defer mu.Unlock()
		if retained {
			got[topic]++
		} else {
			live[topic]++
		}
	}
	// Past filterScan, so the tree is used; s0 is matched twice, d7 (at
	// s1) three times, other/topic once through its exact filter.
	filters := []string{"waystation/v1/+/+/status", "waystation/v1/s0/+/status",
		status("s1", "d7"), "waystation/v1/s1/+/status/extra", "other/topic"}
	for i := range filterScan {
		filters = append(filters, fmt.Sprintf("waystation/v1/none%d/+/status", i))
	}
	filters = append(filters, "waystation/v1/s1/#")
	if err := bus.SubscribeMany(filters, 1, h); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for i := range 30 {
		topic := status(fmt.Sprintf("s%d", i%3), fmt.Sprintf("d%d", i))
		want := 1
		switch {
		case i%3 == 0:
			want = 2
		case i == 7:
			want = 3
		case i%3 == 1:
			want = 2
		}
		if got[topic] != want {
			t.Errorf("%s replayed %d times, want %d", topic, got[topic], want)
		}
	}
	if got["other/topic"] != 1 {
		t.Errorf("other/topic replayed %d times, want 1", got["other/topic"])
	}
	if len(got) != 31 {
		t.Errorf("%d topics replayed, want 31", len(got))
	}
	mu.Unlock()

	if err := bus.Publish(status("s0", "d99"), 1, false, []byte(`{"online":true}`)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if n := live[status("s0", "d99")]; n != 2 {
		t.Errorf("live status at s0 delivered %d times, want 2 (two filters match)", n)
	}
	mu.Unlock()

	// A refused filter among good ones keeps none of them.
	other := b.Bus()
	defer other.Close()
	var calls int
	err := other.SubscribeMany([]string{"waystation/v1/+/+/telemetry", "bad/#/filter"}, 1,
		func(string, []byte, bool) { calls++ })
	if !errors.Is(err, ErrInvalidTopic) {
		t.Fatalf("SubscribeMany with a bad filter: err %v, want ErrInvalidTopic", err)
	}
	if err := bus.Publish("waystation/v1/s0/d0/telemetry", 0, false, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Errorf("refused SubscribeMany still delivered %d messages", calls)
	}
}

// TestBusPublishDuringClose: retained publishes through a Bus while the
// broker closes end in ErrClosed, never in a write to the closed store
// (the race detector watches the store's file handle).
func TestBusPublishDuringClose(t *testing.T) {
	for range 5 {
		e := start(t, func(o *Options) { o.StorePath = filepath.Join(t.TempDir(), "b.db") })
		bus := e.b.Bus()
		done := make(chan error, 1)
		go func() {
			for i := 0; ; i++ {
				err := bus.Publish("waystation/v1/st-1/dev-1/status", 1, true,
					[]byte(fmt.Sprintf(`{"n":%d}`, i)))
				if err != nil {
					done <- err
					return
				}
			}
		}()
		time.Sleep(20 * time.Millisecond)
		if err := e.b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("publish during close: %v", err)
		}
	}
}
