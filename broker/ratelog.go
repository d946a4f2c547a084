package broker

import (
	"context"
	"github.com/mochi-mqtt/server/v2/packets"
	"log/slog"
	"sync"
	"time"
)

const (
	// logWindow is the least time between two log lines of one key.
	logWindow = time.Minute

	// maxLogKeys bounds the keys a limiter remembers; keys are client ids
	// chosen by whoever connects, so they must not grow without end.
	maxLogKeys = 4096

	// overflowKey is shared by every key that finds the limiter full.
	overflowKey = "\x00overflow"
)

// limiter lets one log line per key through per logWindow and counts the
// lines it holds back, so a flood of refusals costs one line a minute.
type limiter struct {
	now func() time.Time

	mu    sync.Mutex // guards keys and swept
	keys  map[string]*limitEntry
	swept time.Time // when keys were last swept
}

type limitEntry struct {
	last       time.Time // when a line of this key was last let through
	suppressed int       // lines held back since
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, keys: make(map[string]*limitEntry)}
}

// allow reports whether a line for key may be logged now and, if so, how
// many lines of key were held back since the last one.
func (l *limiter) allow(key string) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()

	// One slot is kept for overflowKey. A full sweep runs at most once a
	// window, so a stream of new keys costs no scan per line.
	e, found := l.keys[key]
	if !found && len(l.keys) >= maxLogKeys-1 {
		if now.Sub(l.swept) >= logWindow {
			l.sweep(now)
		}
		if len(l.keys) >= maxLogKeys-1 {
			key = overflowKey
			e, found = l.keys[key]
		}
	}
	if !found {
		l.keys[key] = &limitEntry{last: now}
		return true, 0
	}

	if now.Sub(e.last) < logWindow {
		e.suppressed++
		return false, 0
	}
	suppressed = e.suppressed
	e.last, e.suppressed = now, 0
	return true, suppressed
}

// sweep forgets keys whose window has passed; their held-back count is
// lost from the log but not from the metrics.
func (l *limiter) sweep(now time.Time) {
	l.swept = now
	for k, e := range l.keys {
		if now.Sub(e.last) >= logWindow {
			delete(l.keys, k)
		}
	}
}

// limitHandler passes on records at or above a level, at most one per
// message text per logWindow. Mochi logs some lines per client or per
// message (a short keepalive, a full inflight store); this keeps a fleet
// from flooding the log through it.
type limitHandler struct {
	next    slog.Handler
	level   slog.Level
	lim     *limiter
	closing func() bool // while true, only errors pass; nil: never
}

// mochiLogger is the logger handed to mochi: Warn and above, rate limited.
// Once closing reports true, warnings are dropped: they are about clients
// the broker's Close cuts off mid-packet, which is no news.
func mochiLogger(parent *slog.Logger, now func() time.Time, closing func() bool) *slog.Logger {
	h := &limitHandler{
		next:    parent.With("part", "mqtt").Handler(),
		level:   slog.LevelWarn,
		lim:     newLimiter(now),
		closing: closing,
	}
	return slog.New(h)
}

// Enabled implements slog.Handler.
func (h *limitHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= h.level && h.next.Enabled(ctx, level)
}

// Handle implements slog.Handler.
func (h *limitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError && h.closing != nil && h.closing() {
		return nil
	}
	ok, suppressed := h.lim.allow(r.Message)
	if !ok {
		return nil
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(safeAttr(a))
		return true
	})
	if suppressed > 0 {
		out.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.next.Handle(ctx, out)
}

// safeAttr keeps a packet that mochi logs whole out of the log: it holds
// a CONNECT's password (a device secret) and may hold a payload of tens of
// kilobytes. What is left says what the packet was.
func safeAttr(a slog.Attr) slog.Attr {
	pk, ok := a.Value.Any().(packets.Packet)
	if !ok {
		if p, isPtr := a.Value.Any().(*packets.Packet); isPtr && p != nil {
			pk, ok = *p, true
		}
	}
	if !ok {
		return a
	}
	return slog.Group(a.Key,
		slog.Int("type", int(pk.FixedHeader.Type)),
		slog.String("topic", clip(pk.TopicName)),
		slog.Int("payload_bytes", len(pk.Payload)),
	)
}

// WithAttrs implements slog.Handler.
func (h *limitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &limitHandler{next: h.next.WithAttrs(attrs), level: h.level, lim: h.lim, closing: h.closing}
}

// WithGroup implements slog.Handler.
func (h *limitHandler) WithGroup(name string) slog.Handler {
	return &limitHandler{next: h.next.WithGroup(name), level: h.level, lim: h.lim, closing: h.closing}
}
