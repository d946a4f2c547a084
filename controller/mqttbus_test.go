package controller

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/waystation/waystation/internal/mosquitto"
)

func dialTestBus(t *testing.T, m *mosquitto.Broker, reg prometheus.Registerer) *MQTTBus {
	t.Helper()
	b, err := DialMQTTBus(MQTTBusOptions{URL: m.URL(), Username: "ctl", Password: "pw",
		ClientID: "test-controller", MaxReconnectInterval: 200 * time.Millisecond,
		ConnectTimeout: 2 * time.Second, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// collector gathers what a subscription delivers.
type collector struct {
	mu  sync.Mutex
	got []string
}

func (c *collector) handle(topic string, payload []byte, retained bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, fmt.Sprintf("%s %s %v", topic, payload, retained))
}

func (c *collector) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func waitWithin(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publisher is a plain paho client, as a device would be.
func publisher(t *testing.T, m *mosquitto.Broker) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID("pub").
		SetAutoReconnect(false).SetConnectTimeout(2 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		t.Fatalf("connect publisher: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

func publish(t *testing.T, c mqtt.Client, topic string, retained bool, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(3*time.Second) ||
		tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// TestMQTTBusDeliversInOrder: retained messages come flagged, live ones in
// the order they were sent, to every handler of a filter.
func TestMQTTBusDeliversInOrder(t *testing.T) {
	m := mosquitto.Start(t, mosquitto.Config{})
	b := dialTestBus(t, m, nil)
	p := publisher(t, m)
	publish(t, p, "waystation/v1/s1/d1/status", true, "on")

	var c1, c2 collector
	if err := b.Subscribe("waystation/v1/+/+/status", 1, c1.handle); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe("waystation/v1/+/+/status", 1, c2.handle); err != nil {
		t.Fatal(err)
	}
	var tel collector
	if err := b.Subscribe("waystation/v1/+/+/telemetry", 0, tel.handle); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, 3*time.Second, "the retained status", func() bool { return len(c1.list()) >= 1 })
	if got := c1.list()[0]; got != "waystation/v1/s1/d1/status on true" {
		t.Fatalf("retained: %q", got)
	}
	const n = 200
	for i := range n {
		if tok := p.Publish("waystation/v1/s1/d1/telemetry", 1, false, fmt.Sprint(i)); !tok.WaitTimeout(3 * time.Second) {
			t.Fatal("publish timed out")
		}
	}
	waitWithin(t, 5*time.Second, "every telemetry message", func() bool { return len(tel.list()) == n })
	for i, got := range tel.list() {
		if want := fmt.Sprintf("waystation/v1/s1/d1/telemetry %d false", i); got != want {
			t.Fatalf("message %d: %q, want %q", i, got, want)
		}
	}

	// The bus publishes too, and sees its own message.
	if err := b.Publish("waystation/v1/s1/d1/status", 1, false, []byte("off")); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, 3*time.Second, "both handlers get the bus's publish", func() bool {
		return slices.Contains(c1.list(), "waystation/v1/s1/d1/status off false") &&
			slices.Contains(c2.list(), "waystation/v1/s1/d1/status off false")
	})
}

// TestMQTTBusResubscribesAfterBrokerRestart: mosquitto killed and started
// again without persistence forgets the controller's subscriptions; the
// bus reconnects, subscribes again, and later messages arrive.
func TestMQTTBusResubscribesAfterBrokerRestart(t *testing.T) {
	m := mosquitto.Start(t, mosquitto.Config{})
	reg := prometheus.NewRegistry()
	b := dialTestBus(t, m, reg)
	var c collector
	if err := b.Subscribe("waystation/v1/+/+/event", 1, c.handle); err != nil {
		t.Fatal(err)
	}
	m.Kill()
	waitWithin(t, 5*time.Second, "the bus notices", func() bool { return !b.Connected() })
	if err := b.Publish("waystation/v1/s1/d1/cmd", 1, false, []byte("x")); err == nil {
		t.Fatal("publish while disconnected did not fail")
	}
	// A subscription made while the broker is down is made on reconnect.
	var late collector
	if err := b.Subscribe("waystation/v1/+/+/cmd/result", 1, late.handle); err != nil {
		t.Fatal(err)
	}
	m.Restart()
	waitWithin(t, 10*time.Second, "the bus subscribes again", func() bool {
		return testutil.ToFloat64(b.resubscribe) >= 1
	})
	if got := testutil.ToFloat64(b.connected); got != 1 {
		t.Fatalf("connected gauge %v", got)
	}
	if got := testutil.ToFloat64(b.lost); got != 1 {
		t.Fatalf("connection lost counter %v", got)
	}
	p := publisher(t, m)
	publish(t, p, "waystation/v1/s1/d1/event", false, "after")
	publish(t, p, "waystation/v1/s1/d1/cmd/result", false, "late")
	waitWithin(t, 5*time.Second, "messages after the restart", func() bool {
		return slices.Equal(c.list(), []string{"waystation/v1/s1/d1/event after false"}) &&
			slices.Equal(late.list(), []string{"waystation/v1/s1/d1/cmd/result late false"})
	})
}

// TestMQTTBusRefusesBadLogin: a wrong password is found at start-up.
func TestMQTTBusRefusesBadLogin(t *testing.T) {
	m := mosquitto.Start(t, mosquitto.Config{Extra: []string{"allow_anonymous false"}})
	_, err := DialMQTTBus(MQTTBusOptions{URL: m.URL(), Username: "ctl", Password: "nope",
		ConnectTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("connected with a login the broker does not know")
	}
	t.Log(err)
	if _, err := DialMQTTBus(MQTTBusOptions{URL: "http://x:1", Username: "a", Password: "b"}); err == nil {
		t.Fatal("accepted an http URL")
	}
}

// TestMatchingFilters: the lookup used past scanFilters filters finds what
// comparing with every filter finds.
func TestMatchingFilters(t *testing.T) {
	subs := map[string]bool{}
	for i := range scanFilters + 10 {
		subs[fmt.Sprintf("waystation/v1/s%d/+/status", i)] = true
	}
	for _, f := range []string{"#", "waystation/#", "waystation/v1/s1/#", "waystation/v1/s1/d1/status",
		"+/v1/+/+/status", "waystation/v1/s1/d1/cmd/#", "waystation/v1/s1/d1/cmd/result/#", "$SYS/#",
		"+/#"} {
		subs[f] = true
	}
	for _, topic := range []string{"waystation/v1/s1/d1/status", "waystation/v1/s2/d9/status",
		"waystation/v1/s1/d1/cmd/result", "waystation/v1/s1/d1/cmd", "waystation", "$SYS/x",
		"other/v1/s1/d1/status", "waystation/v1/s1"} {
		got := matchingFilters(topic, subs)
		var want []string
		for f := range subs {
			if topicMatches(f, topic) {
				want = append(want, f)
			}
		}
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: lookup %v, scan %v", topic, got, want)
		}
		if len(want) == 0 && topic != "other/v1/s1/d1/status" && topic != "$SYS/x" {
			t.Errorf("%s: nothing matched", topic)
		}
	}
}

// TestMQTTBusPersistentSession: with a persistent session the broker keeps
// what devices sent while the controller was away, and the bus hands it to
// the subscription made after the reconnect, in order, before newer
// messages.
func TestMQTTBusPersistentSession(t *testing.T) {
	m := mosquitto.Start(t, mosquitto.Config{})
	dial := func() *MQTTBus {
		b, err := DialMQTTBus(MQTTBusOptions{URL: m.URL(), Username: "ctl", Password: "pw",
			ClientID: "persistent-controller", Persistent: true, ConnectTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	b := dial()
	var first collector
	if err := b.Subscribe("waystation/v1/+/+/event", 1, first.handle); err != nil {
		t.Fatal(err)
	}
	b.Close()

	p := publisher(t, m)
	for i := range 3 {
		publish(t, p, "waystation/v1/s1/d1/event", false, fmt.Sprint("away-", i))
	}
	b = dial()
	// The queued messages arrive before the subscription is made again.
	waitWithin(t, 5*time.Second, "the queued messages reach the bus", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.backlog) == 3
	})
	var c collector
	if err := b.Subscribe("waystation/v1/+/+/event", 1, c.handle); err != nil {
		t.Fatal(err)
	}
	publish(t, p, "waystation/v1/s1/d1/event", false, "back")
	want := []string{"waystation/v1/s1/d1/event away-0 false", "waystation/v1/s1/d1/event away-1 false",
		"waystation/v1/s1/d1/event away-2 false", "waystation/v1/s1/d1/event back false"}
	waitWithin(t, 5*time.Second, "queued then new messages, in order", func() bool {
		return len(c.list()) == len(want)
	})
	if got := c.list(); !slices.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
	if n := len(first.list()); n != 0 {
		t.Fatalf("the closed bus's handler got %d messages", n)
	}
}
