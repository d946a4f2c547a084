package controller

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/waystation/waystation/broker"
	"github.com/waystation/waystation/schemas"
)

// recordingBus records the alert messages the bus took, and makes the
// broker's "closed" read as ErrBusClosed, as serve does.
type recordingBus struct {
	Bus
	mu  *sync.Mutex
	got *[]AlertMessage
}

func (b recordingBus) Publish(topic string, qos byte, retained bool, payload []byte) error {
	if err := b.Bus.Publish(topic, qos, retained, payload); err != nil {
		if errors.Is(err, broker.ErrClosed) {
			return fmt.Errorf("%w: %w", ErrBusClosed, err)
		}
		return err
	}
	var m AlertMessage
	if err := json.Unmarshal(payload, &m); err != nil || topic != schemas.AlertTopic(m.Alert.Station) {
		panic(fmt.Sprintf("alert message on %s: %s (%v)", topic, payload, err))
	}
	b.mu.Lock()
	*b.got = append(*b.got, m)
	b.mu.Unlock()
	return nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAlertMessagesKeptWhileTheBusIsClosed: alert changes told after the
// broker closed (a clean stop closes it before the controller) are kept
// without a warning, and published in order at the next start.
func TestAlertMessagesKeptWhileTheBusIsClosed(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var got []AlertMessage
	logs := &lockedBuffer{}
	rig := func(clock *fakeClock) *alertRig {
		return newAlertRig(t, alertRigOptions{dir: dir, clock: clock, alerts: func(o *AlertOptions) {
			o.Bus = recordingBus{Bus: o.Bus, mu: &mu, got: &got}
			o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		}})
	}
	messages := func() []AlertMessage {
		mu.Lock()
		defer mu.Unlock()
		return append([]AlertMessage(nil), got...)
	}

	r := rig(nil)
	ac := r.connect(t, "ys-a-ac")
	ac.send(t, schemas.ChannelTelemetry, acTelem(true, "cool", 26, 27, "E4"))
	a := r.alert(t, "ys-a", "ys-a-ac", RuleACFault)
	if !poll(func() bool { return len(messages()) == 1 }) {
		t.Fatalf("the raised alert was not published: %+v", messages())
	}

	r.broker.Close()
	if _, err := r.alerts.Acknowledge(a.ID, "ops", "on it"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.alerts.Resolve(a.ID, "ops"); err != nil {
		t.Fatal(err)
	}
	if !poll(func() bool { return r.alerts.kept.Load() == 2 }) {
		t.Fatalf("kept %d messages, want 2", r.alerts.kept.Load())
	}
	if n := testutil.ToFloat64(r.alerts.published.WithLabelValues("kept")); n != 2 {
		t.Errorf("counted %v kept, want 2", n)
	}
	if s := logs.String(); strings.Contains(s, "level=WARN") || strings.Contains(s, "level=ERROR") ||
		strings.Count(s, "kept to publish at the next start") != 1 {
		t.Errorf("want one line, no warning, for the closed bus; logs:\n%s", s)
	}
	r.shutdown(t)

	// The next start publishes them, oldest first.
	secrets := r.secrets
	r = rig(r.clock)
	r.secrets = secrets
	if !poll(func() bool { return len(messages()) == 3 }) {
		t.Fatalf("after a restart, published %+v", messages())
	}
	ms := messages()
	if ms[1].Type != NoticeAlertAcknowledged || ms[2].Type != NoticeAlertResolved ||
		ms[1].Alert.ID != a.ID || ms[2].Alert.Version <= ms[1].Alert.Version {
		t.Fatalf("kept messages out of order: %+v", ms[1:])
	}
	if !poll(func() bool {
		return r.alerts.kept.Load() == 0 &&
			strings.Contains(logs.String(), "published kept alert messages")
	}) {
		t.Errorf("outbox not emptied (%d left); logs:\n%s", r.alerts.kept.Load(), logs.String())
	}

	// Later changes go straight out.
	ac = r.connect(t, "ys-a-ac")
	ac.send(t, schemas.ChannelTelemetry, acTelem(true, "cool", 26, 27, "E5"))
	r.alert(t, "ys-a", "ys-a-ac", RuleACFault)
	if !poll(func() bool { return len(messages()) == 4 }) {
		t.Fatalf("a new alert was not published: %+v", messages())
	}
}
