package main

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/waystation/waystation/controller"
)

// serverClock is the server's time and zone as of its last answer, read
// from the headers every API answer carries. Times are shown in the
// server's zone, and "ago" is measured against the server's clock: the
// server may run on a simulated one (serve --speed, --start), and the
// machine the command runs on may be in another zone.
type serverClock struct {
	mu  sync.Mutex
	at  time.Time      // the server's time in its answer; zero before one
	got time.Time      // when that answer came, on this machine's clock
	loc *time.Location // the server's zone; nil before an answer
}

// observe reads the clock headers of an answer. An answer without them
// (an older server, or a proxy's error page) changes nothing.
func (c *serverClock) observe(h http.Header) {
	at, err := time.Parse(time.RFC3339Nano, h.Get(controller.HeaderTime))
	if err != nil {
		return
	}
	got := time.Now()
	// The zone by name when this machine knows it (the binary carries the
	// zone database), so times far from now get their own offset (summer
	// time); else the offset the server gave, which is right for now.
	loc := at.Location()
	if name := h.Get(controller.HeaderZone); name != "" {
		if l, err := time.LoadLocation(name); err == nil {
			loc = l
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at, c.got, c.loc = at, got, loc
}

// location is the server's zone, or this machine's before any answer.
func (c *serverClock) location() *time.Location {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loc == nil {
		return time.Local
	}
	return c.loc
}

// now is the server's time: its last answer's, moved on by the wall time
// since (commands print within milliseconds of the answer, so a simulated
// clock's faster pace does not matter); this machine's before any answer.
func (c *serverClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() {
		return time.Now()
	}
	return c.at.Add(time.Since(c.got))
}

// simTime is a log handler that adds the simulated time, as "sim" in the
// server's zone with its offset, to every line: a line's own time is the
// machine's, which log collectors and other processes go by, while alerts,
// commands and the API speak of the simulated one (serve --speed,
// --start). "sim" comes first among a line's attributes and outside any
// group the logger opened, wherever the line is logged.
type simTime struct {
	base slog.Handler                      // the wrapped handler, before any With
	with []func(slog.Handler) slog.Handler // the WithAttrs and WithGroup since, in order
	cur  slog.Handler                      // base with them applied
	now  func() time.Time
	loc  *time.Location
}

// simTimeFormat names the instant even when a daylight-saving change
// repeats an hour.
const simTimeFormat = "2006-01-02 15:04:05 -07:00"

func newSimTime(h slog.Handler, now func() time.Time, loc *time.Location) simTime {
	return simTime{base: h, cur: h, now: now, loc: loc}
}

func (h simTime) Enabled(ctx context.Context, l slog.Level) bool { return h.cur.Enabled(ctx, l) }

func (h simTime) Handle(ctx context.Context, r slog.Record) error {
	out := h.base.WithAttrs([]slog.Attr{
		slog.String("sim", h.now().In(h.loc).Format(simTimeFormat))})
	for _, f := range h.with {
		out = f(out)
	}
	return out.Handle(ctx, r)
}

func (h simTime) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.then(func(x slog.Handler) slog.Handler { return x.WithAttrs(attrs) })
}

func (h simTime) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.then(func(x slog.Handler) slog.Handler { return x.WithGroup(name) })
}

func (h simTime) then(f func(slog.Handler) slog.Handler) simTime {
	h.with = append(slices.Clip(h.with), f)
	h.cur = f(h.cur)
	return h
}
