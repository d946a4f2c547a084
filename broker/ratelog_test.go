package broker

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestLimiter(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newLimiter(clock.Now)

	steps := []struct {
		advance    time.Duration
		key        string
		ok         bool
		suppressed int
	}{
		{0, "a", true, 0},
		{time.Second, "a", false, 0},
		{time.Second, "a", false, 0},
		{0, "b", true, 0},
		{logWindow - 2*time.Second, "a", true, 2},
		{0, "a", false, 0},
		{logWindow, "a", true, 1},
		{0, "b", true, 0},
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		ok, n := l.allow(s.key)
		if ok != s.ok || n != s.suppressed {
			t.Errorf("step %d (%s): allow = %v, %d; want %v, %d", i, s.key, ok, n, s.ok, s.suppressed)
		}
	}
}

// Keys are chosen by whoever connects; the limiter must stay bounded.
func TestLimiterBounded(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newLimiter(clock.Now)

	allowed := 0
	for i := range 3 * maxLogKeys {
		if ok, _ := l.allow(fmt.Sprint("client-", i)); ok {
			allowed++
		}
	}
	if len(l.keys) > maxLogKeys {
		t.Errorf("%d keys remembered, want at most %d", len(l.keys), maxLogKeys)
	}
	if allowed != maxLogKeys {
		t.Errorf("%d lines let through in a window, want %d (then one shared)", allowed, maxLogKeys)
	}

	clock.Advance(logWindow)
	if ok, _ := l.allow("late"); !ok {
		t.Error("a new key was held back after the window passed")
	}
}

func TestMochiLoggerLevelAndRate(t *testing.T) {
	var buf bytes.Buffer
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	parent := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log := mochiLogger(parent, clock.Now, nil).With("listener", "tcp")

	log.Info("client connected")
	for range 10 {
		log.Warn("client keepalive is below minimum")
	}
	log.Error("failed to upsert data")
	clock.Advance(logWindow)
	log.Warn("client keepalive is below minimum")

	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), out)
	}
	if strings.Contains(out, "client connected") {
		t.Error("an Info line of mochi got through")
	}
	if !strings.Contains(lines[2], "suppressed=9") || !strings.Contains(lines[2], "part=mqtt") ||
		!strings.Contains(lines[2], "listener=tcp") {
		t.Errorf("last line %q lacks the suppressed count or attributes", lines[2])
	}
}

// TestMochiLoggerKeepsSecretsOut: a packet mochi logs whole (with a
// CONNECT's password) reaches the log as its type and topic only.
func TestMochiLoggerKeepsSecretsOut(t *testing.T) {
	var buf bytes.Buffer
	log := mochiLogger(slog.New(slog.NewTextHandler(&buf, nil)), time.Now, nil)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{Password: []byte("s3cret-s3cret"), Username: []byte("ys-001-ac")},
		Payload: bytes.Repeat([]byte("x"), 60000)}
	log.Warn("error processing packet", "error", "second connect", "pk", pk)
	out := buf.String()
	if strings.Contains(out, "s3cret") || strings.Contains(out, "115 51 99") || len(out) > 500 {
		t.Fatalf("log line leaks the packet (%d bytes): %.300s", len(out), out)
	}
	if !strings.Contains(out, "pk.type=1") || !strings.Contains(out, "payload_bytes=60000") {
		t.Fatalf("log line lost what the packet was: %s", out)
	}
}

// TestMochiLoggerQuietWhileClosing: once the broker closes, mochi's
// warnings about the clients it cuts off are dropped; errors still pass.
func TestMochiLoggerQuietWhileClosing(t *testing.T) {
	var buf bytes.Buffer
	var closing atomic.Bool
	log := mochiLogger(slog.New(slog.NewTextHandler(&buf, nil)), time.Now, closing.Load)
	log.Warn("error processing packet", "error", "before")
	closing.Store(true)
	log.Warn("error processing packet", "error", "while closing")
	log.Error("failed to close store")
	out := buf.String()
	if !strings.Contains(out, "error=before") || strings.Contains(out, "while closing") ||
		!strings.Contains(out, "failed to close store") {
		t.Fatalf("log:\n%s", out)
	}
}
