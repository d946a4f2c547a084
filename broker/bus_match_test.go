package broker

import (
	"fmt"
	"sync/atomic"
	"testing"
)

func TestMatchFilter(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"waystation/v1/+/+/status", "waystation/v1/ys-001/ys-001-ac/status", true},
		{"waystation/v1/+/+/status", "waystation/v1/ys-001/ys-001-ac/telemetry", false},
		{"waystation/v1/+/+/status", "waystation/v1/ys-001/status", false},
		{"waystation/v1/+/+/status", "waystation/v1/a/b/status/x", false},
		{"waystation/#", "waystation/v1/a/b/cmd/result", true},
		{"waystation/#", "waystation", true},
		{"#", "waystation/v1", true},
		{"#", "$SYS/broker/uptime", false},
		{"+/broker/uptime", "$SYS/broker/uptime", false},
		{"$SYS/#", "$SYS/broker/uptime", true},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"a/b", "a/b", true},
		{"+/+", "a/b/c", false},
	} {
		if got := matchFilter(tc.filter, tc.topic); got != tc.want {
			t.Errorf("matchFilter(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

// TestBusWildcardSubscribeWhileRetaining subscribes with wildcards while
// retained statuses are published; under the race detector this caught
// mochi's unlocked walk of the topic tree.
func TestBusWildcardSubscribeWhileRetaining(t *testing.T) {
	b := start(t, nil).b
	bus := b.Bus()
	defer bus.Close()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			topic := fmt.Sprintf("waystation/v1/ys-%03d/ys-%03d-ac/status", i%50, i%50)
			if err := bus.Publish(topic, 1, true, []byte(`{"online":true,"kind":"ac"}`)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var seen atomic.Int64
	for range 50 {
		err := bus.Subscribe("waystation/v1/+/+/status", 1, func(string, []byte, bool) { seen.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
	}
	<-done
	var retained int
	if err := bus.Subscribe("waystation/v1/+/+/status", 1, func(_ string, _ []byte, r bool) {
		if r {
			retained++
		}
	}); err != nil {
		t.Fatal(err)
	}
	if retained != 50 {
		t.Fatalf("a new wildcard subscriber got %d retained statuses, want 50", retained)
	}
}
