package simulators

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/waystation/waystation/schemas"
)

func TestClockRunsAtItsSpeed(t *testing.T) {
	start := time.Date(2025, 7, 20, 5, 0, 0, 0, shanghai())
	c := NewClock(start, 1000)
	if got := c.Now(); got.Before(start) || got.Sub(start) > time.Minute {
		t.Fatalf("a new clock reads %v, want about %v", got, start)
	}

	wall := time.Now()
	if !c.Sleep(t.Context(), time.Minute) {
		t.Fatal("Sleep returned early")
	}
	took := time.Since(wall)
	if took < 55*time.Millisecond || took > 500*time.Millisecond {
		t.Errorf("a simulated minute at speed 1000 took %v of wall time, want about 60ms", took)
	}
	if passed := c.Now().Sub(start); passed < time.Minute || passed > 10*time.Minute {
		t.Errorf("clock advanced %v over a simulated minute", passed)
	}

	// A timer and a ticker at simulated periods.
	tm := c.NewTimer(30 * time.Second)
	before := c.Now()
	<-tm.C
	if passed := c.Now().Sub(before); passed < 30*time.Second {
		t.Errorf("timer of 30s fired after %v of simulated time", passed)
	}
	tm.Reset(time.Hour)
	if !tm.Stop() {
		t.Error("Stop of a pending timer reported it had fired")
	}

	tk := c.NewTicker(20 * time.Second)
	defer tk.Stop()
	before = c.Now()
	for range 3 {
		<-tk.C
	}
	if passed := c.Now().Sub(before); passed < 60*time.Second || passed > 10*time.Minute {
		t.Errorf("three ticks of 20s took %v of simulated time", passed)
	}
}

func TestClockSleepUntilAndCancel(t *testing.T) {
	c := NewClock(time.Date(2025, 1, 15, 4, 0, 0, 0, shanghai()), 3600)
	target := c.Now().Add(30 * time.Minute)
	if !c.SleepUntil(t.Context(), target) {
		t.Fatal("SleepUntil returned early")
	}
	if c.Now().Before(target) {
		t.Errorf("woke at %v, before %v", c.Now(), target)
	}
	if !c.SleepUntil(t.Context(), target.Add(-time.Hour)) {
		t.Error("SleepUntil of a time past did not return true at once")
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if c.Sleep(ctx, time.Hour) || c.SleepUntil(ctx, c.Now().Add(time.Hour)) {
		t.Error("sleeps on an ended context reported that the time passed")
	}
}

func TestClockLimits(t *testing.T) {
	cases := []struct {
		speed, want float64
	}{
		{60, 60}, {0, MinSpeed}, {-5, MinSpeed}, {1e9, MaxSpeed}, {math.NaN(), 1},
	}
	for _, c := range cases {
		if got := NewClock(time.Time{}, c.speed).Speed(); got != c.want {
			t.Errorf("speed %v: clock runs at %v, want %v", c.speed, got, c.want)
		}
	}
	c := NewClock(time.Time{}, 60)
	if w := c.Wall(time.Hour); w != time.Minute {
		t.Errorf("an hour at speed 60 is %v of wall time", w)
	}
	if s := c.Simulated(time.Minute); s != time.Hour {
		t.Errorf("a wall minute at speed 60 is %v of simulated time", s)
	}
	if d := time.Since(NewClock(time.Time{}, 1).Now()); d < -time.Second || d > time.Second {
		t.Errorf("a clock from now at speed 1 is %v off the wall clock", d)
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2025, 7, 20, 5, 0, 0, 0, shanghai())
	for _, s := range []string{
		"2025-07-20T05:00:00+08:00", "2025-07-19T21:00:00Z", "2025-07-20 05:00",
		"2025-07-20T05:00", " 2025-07-20 05:00:00 ",
	} {
		got, err := ParseTime(s, nil)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if got, err := ParseTime("2025-01-15", time.UTC); err != nil ||
		!got.Equal(time.Date(2025, 1, 15, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("a date alone: %v, %v", got, err)
	}
	for _, s := range []string{"", "yesterday", "2025-13-01", "05:00", "2025-07-20 25:00"} {
		if _, err := ParseTime(s, nil); !errors.Is(err, ErrTime) {
			t.Errorf("ParseTime(%q): %v, want ErrTime", s, err)
		}
	}
}

// TestDeviceRunsOnAcceleratedClock: at speed 300 a device with a 30 s
// period reports about every 100 ms of wall time, stamped 30 s apart, and
// at a speed too high for its period it stretches the period and says so.
func TestDeviceRunsOnAcceleratedClock(t *testing.T) {
	b := startBroker(t)
	w := watchLive(t, b)
	start := time.Date(2025, 7, 20, 14, 0, 0, 0, shanghai())

	s := spec("st-1", "st-1-ac", schemas.KindAC)
	s.Interval = 30 * time.Second
	fast := spec("st-1", "st-1-lock", schemas.KindLock)
	fast.Interval = 30 * time.Second
	clock := NewClock(start, 300)
	d := NewDevice(s, DeviceOptions{Broker: b.url, Clock: clock})
	runDevice(t, d)
	eventually(t, 5*time.Second, "six telemetry messages", func() bool {
		return len(w.telemetry(s.Device, s.Kind)) >= 6
	})
	tms := w.telemetry(s.Device, s.Kind)
	for i := 2; i < len(tms); i++ { // the second may follow a boot event flush early
		gap := time.Duration(tms[i].TS-tms[i-1].TS) * time.Millisecond
		if gap < 20*time.Second || gap > 45*time.Second {
			t.Errorf("telemetry %d came %v of simulated time after the one before, want ~30s", i, gap)
		}
	}
	if first := time.UnixMilli(tms[0].TS); first.Before(start) || first.Sub(start) > time.Hour {
		t.Errorf("first telemetry stamped %v, want just after %v", first, start)
	}
	if st := w.statuses(s.Device); len(st) == 0 || st[0].IntervalS != 30 {
		t.Errorf("status %+v, want interval_s 30", st)
	}

	// At speed 10000 a 30 s period would be 3 ms of wall time: it stretches
	// to 50 ms, 500 s simulated, and the status says 500.
	lk := NewDevice(fast, DeviceOptions{Broker: b.url, Clock: NewClock(start, 10000)})
	runDevice(t, lk)
	eventually(t, 5*time.Second, "the fast lock's status", func() bool {
		return len(w.statuses(fast.Device)) > 0
	})
	if st := w.statuses(fast.Device)[0]; st.IntervalS != 500 {
		t.Errorf("status at speed 10000: interval_s %d, want 500", st.IntervalS)
	}
}
