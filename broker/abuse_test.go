package broker

import (
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/waystation/waystation/schemas"
)

// abuseFleet adds devices of their own for the abuse tests to the fleet.
func abuseFleet() testCreds {
	c := testCreds{}
	for id, d := range fleet {
		c[id] = d
	}
	for _, id := range []string{"flood-1", "big-1", "utf-1", "good-1"} {
		c[id] = struct{ station, secret string }{"st-9", "secret-" + id}
	}
	return c
}

// busInbox subscribes a Bus to every device topic and collects what comes.
func busInbox(t *testing.T, e *env) inbox {
	t.Helper()
	in := make(inbox, 4096)
	bus := e.b.Bus()
	t.Cleanup(func() { _ = bus.Close() })
	if err := bus.Subscribe("waystation/v1/#", 1, in.bus); err != nil {
		t.Fatal(err)
	}
	return in
}

// drain returns what in holds once nothing more arrives for quiet.
func (in inbox) drain(quiet time.Duration) []msg {
	var out []msg
	for {
		select {
		case m := <-in:
			out = append(out, m)
		case <-time.After(quiet):
			return out
		}
	}
}

// lostHandler returns paho options that report a lost connection on a
// channel, and a will of the device's own offline status.
func lostHandler(station, id string) (chan error, func(*paho.ClientOptions)) {
	lost := make(chan error, 1)
	return lost, func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
		// A publish racing the cut would wait 30 s for a connection
		// that is gone.
		o.SetWriteTimeout(200 * time.Millisecond)
		o.SetWill(schemas.DeviceTopic(station, id, schemas.ChannelStatus), `{"online":false}`, 1, true)
	}
}

func waitLost(t *testing.T, lost chan error, what string) {
	t.Helper()
	select {
	case <-lost:
	case <-time.After(waitFor):
		t.Fatalf("%s: connection not dropped", what)
	}
}

// A device publishing faster than its rate is cut at the first publish
// over it: counted once, that publish and every later one dropped, its will
// published (it is offline), nothing of it retained; the limit is per
// device, so another device carries on.
func TestPublishRateCutsConnection(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)}
	e := start(t, func(o *Options) {
		o.Credentials = abuseFleet()
		o.Now = clk.Now
		o.MaxMsgsPerSecond, o.MsgBurst = 2, 5
	})
	in := busInbox(t, e)
	status := schemas.DeviceTopic("st-9", "flood-1", schemas.ChannelStatus)
	telemetry := schemas.DeviceTopic("st-9", "flood-1", schemas.ChannelTelemetry)

	lost, mod := lostHandler("st-9", "flood-1")
	flood := mustDial(t, e.url(), "flood-1", "flood-1", "secret-flood-1", mod)
	good := mustDial(t, e.url(), "good-1", "good-1", "secret-good-1", nil)

	// The burst, then one more token a half second of the broker's clock.
	publish(t, flood, status, 1, true, `{"online":true}`)
	for range 4 {
		publish(t, flood, telemetry, 1, false, "ok")
	}
	clk.Advance(500 * time.Millisecond)
	publish(t, flood, telemetry, 1, false, "refilled")
	if got := len(in.drain(100 * time.Millisecond)); got != 6 {
		t.Fatalf("%d messages within the rate arrived, want 6", got)
	}
	if e.denied(actionPublish, reasonRate) != 0 {
		t.Fatal("counted a refusal within the rate")
	}

	// Over the rate: a retained status and a flood of QoS 0 behind it.
	flood.Publish(status, 1, true, `{"online":true,"over":1}`)
	for range 50 {
		if !flood.IsConnectionOpen() {
			break
		}
		flood.Publish(telemetry, 0, false, "over")
	}
	waitLost(t, lost, "over the rate")
	e.waitDenied(actionPublish, reasonRate, 1)

	got := in.drain(200 * time.Millisecond)
	if len(got) != 1 || got[0].topic != status || got[0].payload != `{"online":false}` {
		t.Fatalf("after the cut the bus got %+v, want only the device's will", got)
	}
	if r := e.b.srv.Topics.Messages(status); len(r) != 1 || string(r[0].Payload) != `{"online":false}` {
		t.Errorf("retained status after the cut: %+v, want the will", r)
	}

	// The other device is not limited by the first one's rate.
	goodTopic := schemas.DeviceTopic("st-9", "good-1", schemas.ChannelTelemetry)
	for range 5 {
		publish(t, good, goodTopic, 1, false, "fine")
	}
	if got := in.drain(100 * time.Millisecond); len(got) != 5 {
		t.Errorf("other device: %d of 5 messages arrived", len(got))
	}
	if !good.IsConnectionOpen() {
		t.Error("other device was disconnected")
	}
	if e.denied(actionPublish, reasonRate) != 1 {
		t.Errorf("denied{rate} = %v, want 1", e.denied(actionPublish, reasonRate))
	}

	// Reconnecting starts a fresh allowance.
	again := mustDial(t, e.url(), "flood-1", "flood-1", "secret-flood-1", nil)
	publish(t, again, telemetry, 1, false, "back")
	if m := in.next(t); m.payload != "back" {
		t.Errorf("after reconnecting got %+v", m)
	}
}

// The controller's network login is never rate limited.
func TestControllerNotRateLimited(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)}
	e := start(t, func(o *Options) {
		o.Now = clk.Now
		o.MaxMsgsPerSecond, o.MsgBurst = 1, 2
	})
	c := controller(t, e.url())
	for range 20 {
		publish(t, c, lock1Cmd, 1, false, "{}")
	}
	if !c.IsConnectionOpen() || e.denied(actionPublish, reasonRate) != 0 {
		t.Error("controller was rate limited")
	}
}

// A publish whose topic is invalid UTF-8, holds a NUL or a wildcard cuts
// the connection: counted, nothing relayed or kept, the will published.
// Paho sends such topics as given; a raw socket checks the same of a
// client that takes no library's word for it.
func TestMalformedTopicCutsConnection(t *testing.T) {
	e := start(t, func(o *Options) { o.Credentials = abuseFleet() })
	in := busInbox(t, e)
	good := mustDial(t, e.url(), "good-1", "good-1", "secret-good-1", nil)
	goodTopic := schemas.DeviceTopic("st-9", "good-1", schemas.ChannelTelemetry)
	base := schemas.DeviceTopic("st-9", "utf-1", schemas.ChannelTelemetry)
	will := schemas.DeviceTopic("st-9", "utf-1", schemas.ChannelStatus)

	bad := []string{base + "\xff", base + "/\xc3\x28", base + "\x00", base + "/#"}
	for i, topic := range bad {
		lost, mod := lostHandler("st-9", "utf-1")
		c := mustDial(t, e.url(), "utf-1", "utf-1", "secret-utf-1", mod)
		c.Publish(topic, 1, true, "x")
		waitLost(t, lost, "paho "+strings.ToValidUTF8(topic, "?"))
		e.waitDenied(actionPublish, reasonMalformed, float64(i+1))
		if got := in.drain(100 * time.Millisecond); len(got) != 1 || got[0].topic != will {
			t.Errorf("topic %q: the bus got %+v, want only the will", topic, got)
		}
	}

	for i, topic := range bad {
		raw, ack := rawConnect(t, e.b.TCPAddr(), 4, packets.ConnectParams{
			ClientIdentifier: "utf-1", Clean: true,
			Username: []byte("utf-1"), Password: []byte("secret-utf-1"),
		})
		if ack.ReasonCode != 0 {
			t.Fatalf("connack %d", ack.ReasonCode)
		}
		raw.send(t, packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish},
			TopicName:   topic, Payload: []byte("x"),
		})
		if _, err := raw.tryRead(waitFor); !closedByPeer(err) {
			t.Errorf("raw %q: read err %v, want the connection closed", topic, err)
		}
		e.waitDenied(actionPublish, reasonMalformed, float64(len(bad)+i+1))
	}

	publish(t, good, goodTopic, 1, false, "fine")
	got := in.drain(100 * time.Millisecond)
	if len(got) != 1 || got[0].topic != goodTopic {
		t.Errorf("the bus got %+v, want only the other device's message", got)
	}
	for topic := range e.b.srv.Topics.Retained.GetAll() {
		if strings.HasPrefix(topic, "waystation/") && topic != will {
			t.Errorf("retained message on %q, want only the will", topic)
		}
	}
}

// Three devices misbehave at once (oversize, flood, bad topic) while a
// fourth keeps publishing: each abuser is cut and counted once, and every
// message of the fourth arrives.
func TestAbuseLeavesOthersAlone(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)}
	e := start(t, func(o *Options) {
		o.Credentials = abuseFleet()
		o.MaxPacketBytes = 2048
		o.Now = clk.Now // frozen: each device has its burst and no more
		o.MaxMsgsPerSecond, o.MsgBurst = 100, 1000
	})
	in := busInbox(t, e)
	good := mustDial(t, e.url(), "good-1", "good-1", "secret-good-1", nil)
	goodTopic := schemas.DeviceTopic("st-9", "good-1", schemas.ChannelTelemetry)

	type abuser struct {
		id   string
		send func(c paho.Client, topic string)
	}
	abusers := []abuser{
		{"big-1", func(c paho.Client, topic string) { c.Publish(topic, 0, false, strings.Repeat("x", 4096)) }},
		{"flood-1", func(c paho.Client, topic string) {
			for range 5000 {
				if !c.IsConnectionOpen() {
					return // cut; paho would hold further publishes for a while
				}
				c.Publish(topic, 0, false, "{}")
			}
		}},
		{"utf-1", func(c paho.Client, topic string) { c.Publish(topic+"\xfe", 0, false, "{}") }},
	}
	var wg sync.WaitGroup
	for _, a := range abusers {
		lost := make(chan error, 1)
		c := mustDial(t, e.url(), a.id, a.id, "secret-"+a.id, func(o *paho.ClientOptions) {
			o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
			o.SetWriteTimeout(200 * time.Millisecond)
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.send(c, schemas.DeviceTopic("st-9", a.id, schemas.ChannelTelemetry))
			select {
			case <-lost:
			case <-time.After(waitFor):
				t.Errorf("%s not cut", a.id)
			}
		}()
	}
	const goodN = 200
	for range goodN {
		publish(t, good, goodTopic, 1, false, "fine")
	}
	wg.Wait()
	e.waitDenied(actionPublish, reasonTooLarge, 1)
	e.waitDenied(actionPublish, reasonRate, 1)
	e.waitDenied(actionPublish, reasonMalformed, 1)

	goodGot, floodGot := 0, 0
	for _, m := range in.drain(200 * time.Millisecond) {
		switch {
		case m.topic == goodTopic:
			goodGot++
		case strings.Contains(m.topic, "flood-1"):
			floodGot++
		default:
			t.Errorf("unexpected message on %q (%d bytes)", m.topic, len(m.payload))
		}
	}
	if goodGot != goodN {
		t.Errorf("%d of %d messages of the well-behaved device arrived", goodGot, goodN)
	}
	if floodGot > 1000 {
		t.Errorf("%d messages of the flooding device arrived; its burst is 1000", floodGot)
	}
	if !good.IsConnectionOpen() {
		t.Error("well-behaved device disconnected")
	}
}
