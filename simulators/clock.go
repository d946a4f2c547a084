package simulators

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Clock is the time of a simulation. It starts at a chosen instant and runs
// Speed times as fast as the wall clock, so at speed 60 an hour passes in a
// minute. Devices read the time of day from it and wait on it for their
// telemetry periods, physics steps, self-tests, reboots, power cuts and
// scenario actions. Network timing (connects, publish timeouts, reconnect
// backoff, the wait for an access answer) stays on the wall clock: the
// network and the platform answer in wall time whatever the speed.
//
// A Clock is safe for concurrent use. Passing its Now to the controller
// makes the platform live in the same simulated time as the devices.
type Clock struct {
	now   func() time.Time
	speed float64
}

// Speed limits of NewClock.
const (
	MinSpeed = 0.01
	MaxSpeed = 100000.0
)

// NewClock returns a clock that reads start now and then runs at speed
// times the wall clock. A zero start means the current time; a speed that
// is not a number, or outside MinSpeed..MaxSpeed, is clamped into that
// range (1 for NaN).
func NewClock(start time.Time, speed float64) *Clock {
	switch {
	case math.IsNaN(speed):
		speed = 1
	case speed < MinSpeed:
		speed = MinSpeed
	case speed > MaxSpeed:
		speed = MaxSpeed
	}
	wall := time.Now()
	if start.IsZero() {
		start = wall
	}
	// Without its monotonic reading, a simulated instant compares by its
	// wall value with times parsed from scenarios and commands.
	start = start.Round(0)
	if speed == 1 {
		offset := start.Sub(wall)
		return &Clock{speed: 1, now: func() time.Time { return time.Now().Add(offset).Round(0) }}
	}
	return &Clock{speed: speed, now: func() time.Time {
		return start.Add(time.Duration(float64(time.Since(wall)) * speed))
	}}
}

// clockFrom wraps a plain clock function, as DeviceOptions.Now gives: the
// time comes from now and timers run on the wall clock.
func clockFrom(now func() time.Time) *Clock {
	return &Clock{now: now, speed: 1}
}

// Now returns the simulated time.
func (c *Clock) Now() time.Time { return c.now() }

// Speed returns how many simulated seconds pass in a wall-clock second.
func (c *Clock) Speed() float64 { return c.speed }

// Wall returns how long a simulated duration d lasts on the wall clock.
func (c *Clock) Wall(d time.Duration) time.Duration {
	if c.speed == 1 || d <= 0 {
		return d
	}
	return time.Duration(float64(d) / c.speed)
}

// Simulated returns how much simulated time passes in wall duration d.
func (c *Clock) Simulated(d time.Duration) time.Duration {
	if c.speed == 1 {
		return d
	}
	return time.Duration(float64(d) * c.speed)
}

// Until returns the simulated time from now until t.
func (c *Clock) Until(t time.Time) time.Duration { return t.Sub(c.Now()) }

// Sleep waits for simulated duration d, or until ctx ends, and reports
// whether d passed.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) bool {
	return sleep(ctx, c.Wall(d))
}

// SleepUntil waits until the clock reads t, or ctx ends, and reports
// whether t came. A time already past returns at once.
func (c *Clock) SleepUntil(ctx context.Context, t time.Time) bool {
	for {
		left := c.Until(t)
		if left <= 0 {
			return ctx.Err() == nil
		}
		if !c.Sleep(ctx, left) {
			return false
		}
	}
}

// Timer fires once after a simulated duration. Its channel delivers the
// wall time it fired at, as time.Timer does; read Clock.Now for the
// simulated time.
type Timer struct {
	C <-chan time.Time
	t *time.Timer
	c *Clock
}

// NewTimer returns a timer that fires after simulated duration d.
func (c *Clock) NewTimer(d time.Duration) *Timer {
	t := time.NewTimer(c.Wall(d))
	return &Timer{C: t.C, t: t, c: c}
}

// Reset makes the timer fire after simulated duration d, as
// time.Timer.Reset does.
func (t *Timer) Reset(d time.Duration) bool { return t.t.Reset(t.c.Wall(d)) }

// Stop stops the timer, as time.Timer.Stop does.
func (t *Timer) Stop() bool { return t.t.Stop() }

// Ticker ticks every simulated period. Its channel delivers wall times, as
// time.Ticker's does.
type Ticker struct {
	C <-chan time.Time
	t *time.Ticker
	c *Clock
}

// NewTicker returns a ticker with a simulated period d; d must be
// positive, and a period shorter than a microsecond of wall time is
// lengthened to one.
func (c *Clock) NewTicker(d time.Duration) *Ticker {
	t := time.NewTicker(max(time.Microsecond, c.Wall(d)))
	return &Ticker{C: t.C, t: t, c: c}
}

// Reset changes the simulated period, as time.Ticker.Reset does.
func (t *Ticker) Reset(d time.Duration) { t.t.Reset(max(time.Microsecond, t.c.Wall(d))) }

// Stop stops the ticker.
func (t *Ticker) Stop() { t.t.Stop() }

// ErrTime is wrapped by ParseTime's errors.
var ErrTime = errors.New("bad time")

// timeLayouts are the local forms ParseTime accepts besides RFC 3339.
var timeLayouts = []string{
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseTime reads a time for a clock's start or a scenario: RFC 3339
// ("2025-07-20T05:00:00+08:00"), or a date and time of day in loc
// ("2025-07-20 05:00", "2025-07-20T05:00:30", "2025-07-20" for midnight).
// A nil loc means Asia/Shanghai.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = shanghai()
	}
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %q: want RFC 3339 (2025-07-20T05:00:00+08:00) or a local "+
		"date and time (2025-07-20 05:00)", ErrTime, s)
}
