package controller

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waystation/waystation/schemas"
)

func TestPresenceMarksSilentDevicesOffline(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 7, 17, 1, 0, 0, 0, time.UTC)}
	r := newRig(t, IngestOptions{Now: clock.Now})
	p, err := NewPresence(PresenceOptions{Twins: r.twins, Registry: r.reg, Now: clock.Now,
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}

	// The AC reports every 30 s (its own status says so); the lock keeps
	// its kind's default of 60 s.
	r.publish(t, "ys-001-ac", schemas.ChannelStatus, `{"online":true,"kind":"ac","interval_s":30,"conn":"a"}`)
	r.publish(t, "ys-001-lock", schemas.ChannelStatus, `{"online":true,"kind":"lock","conn":"l"}`)
	waitFor(t, "both online", func() bool { return r.twins.Online() == 2 })

	clock.Add(89 * time.Second)
	if n := p.Sweep(); n != 0 {
		t.Fatalf("marked %d offline within the allowance", n)
	}
	clock.Add(2 * time.Second) // 91 s: past 3 × 30 s
	if n := p.Sweep(); n != 1 {
		t.Fatalf("marked %d offline, want the AC", n)
	}
	if tw, _ := r.twins.Get("ys-001-ac"); tw.Online {
		t.Fatal("silent AC still online")
	}
	if tw, _ := r.twins.Get("ys-001-lock"); !tw.Online {
		t.Fatal("the lock went offline inside its 180 s allowance")
	}

	// The AC speaks again: telemetry brings it back.
	r.publish(t, "ys-001-ac", schemas.ChannelTelemetry,
		`{"power":false,"mode":"fan","setpoint_c":26,"room_c":27}`)
	waitFor(t, "AC back online", func() bool {
		tw, _ := r.twins.Get("ys-001-ac")
		return tw.Online
	})
	clock.Add(90 * time.Second) // lock at 181 s
	if n := p.Sweep(); n != 1 {
		t.Fatalf("marked %d offline, want the lock", n)
	}
}

// TestPresenceGivesAllowanceAfterRestart: twins loaded with an old last seen
// are not marked offline the moment the controller starts.
func TestPresenceGivesAllowanceAfterRestart(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 5, 4, 0, 0, 0, time.UTC)}
	r := newRig(t, IngestOptions{Now: clock.Now})
	r.publish(t, "ys-001-ac", schemas.ChannelStatus, `{"online":true,"kind":"ac","conn":"a"}`)
	waitFor(t, "online", func() bool { return r.twins.Online() == 1 })

	clock.Add(2 * time.Hour) // the controller was down for two hours
	p, err := NewPresence(PresenceOptions{Twins: r.twins, Registry: r.reg, Now: clock.Now,
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Sweep(); n != 0 {
		t.Fatalf("marked %d offline at start-up", n)
	}
	clock.Add(91 * time.Second)
	if n := p.Sweep(); n != 1 {
		t.Fatalf("marked %d offline after the allowance", n)
	}
}

// TestRetainedReplayIsNotASignOfLife: the retained status a new
// subscription replays sets presence but not last seen.
func TestRetainedReplayIsNotASignOfLife(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 5, 4, 0, 0, 0, time.UTC)}
	r := newRig(t, IngestOptions{Now: clock.Now})
	topic := schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelStatus)
	if err := r.bus.Publish(topic, 1, true, []byte(`{"online":true,"kind":"ac","conn":"a"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "online", func() bool { return r.twins.Online() == 1 })
	first, _ := r.twins.Get("ys-001-ac")

	// A second ingest on the same twins, as after a controller restart,
	// gets the retained status replayed.
	clock.Add(time.Hour)
	in2, err := NewIngest(IngestOptions{Bus: r.bus, Registry: r.reg, Twins: r.twins, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	in2.handle(inbound{topic: topic, payload: []byte(`{"online":true,"kind":"ac","conn":"a"}`),
		retained: true, at: clock.Now()})
	again, _ := r.twins.Get("ys-001-ac")
	if !again.LastSeen.Equal(first.LastSeen) || again.Messages != first.Messages {
		t.Fatalf("replay changed last seen %v→%v or messages %d→%d", first.LastSeen, again.LastSeen,
			first.Messages, again.Messages)
	}
}

// TestRefusedRetainedStatusIsCleared: a status the controller refuses is
// removed from the broker so it is not replayed at every start.
func TestRefusedRetainedStatusIsCleared(t *testing.T) {
	r := newRig(t, IngestOptions{})
	topic := schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelStatus)
	if err := r.bus.Publish(topic, 1, true, []byte(`{"online":true,"kind":"lock"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "refusal counted", func() bool { return r.count("status", ResultInvalid) == 1 })
	waitFor(t, "retained status cleared", func() bool {
		got := 0
		_ = r.bus.Subscribe(topic, 1, func(_ string, _ []byte, retained bool) {
			if retained {
				got++
			}
		})
		return got == 0
	})
	if n := r.count("status", ResultInvalid); n != 1 {
		t.Fatalf("the clearing was counted as another refusal: %v", n)
	}
}
