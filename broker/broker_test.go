package broker

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"github.com/waystation/waystation/schemas"
)

var (
	lock1Status    = schemas.DeviceTopic("st-1", "lock-1", schemas.ChannelStatus)
	lock1Telemetry = schemas.DeviceTopic("st-1", "lock-1", schemas.ChannelTelemetry)
	lock1Cmd       = schemas.DeviceTopic("st-1", "lock-1", schemas.ChannelCmd)
	lock1AccessRes = schemas.DeviceTopic("st-1", "lock-1", schemas.ChannelAccessRes)
	lock2Telemetry = schemas.DeviceTopic("st-2", "lock-2", schemas.ChannelTelemetry)
	lock2Cmd       = schemas.DeviceTopic("st-2", "lock-2", schemas.ChannelCmd)
)

func TestConnectAuthentication(t *testing.T) {
	e := start(t, nil)
	withWill := func(topic string, retained bool) func(*paho.ClientOptions) {
		return func(o *paho.ClientOptions) { o.SetWill(topic, "offline", 1, retained) }
	}
	cases := []struct {
		name, clientID, user, pass string
		mod                        func(*paho.ClientOptions)
		reason                     string // "" means accepted
	}{
		{"device", "lock-1", "lock-1", "secret-lock-1", nil, ""},
		{"device with own will", "ac-1", "ac-1", "secret-ac-1", withWill(
			schemas.DeviceTopic("st-1", "ac-1", schemas.ChannelStatus), true), ""},
		{"controller", "ctrl-1", ctrlUser, ctrlSecret, nil, ""},
		{"bad secret", "lock-1", "lock-1", "secret-lock-2", nil, reasonBadSecret},
		{"unknown device", "ghost-1", "ghost-1", "x", nil, reasonUnknown},
		{"invalid device id", "Ghost 1", "Ghost 1", "x", nil, reasonUnknown},
		{"client id of another device", "lock-2", "lock-1", "secret-lock-1", nil,
			reasonClientID},
		{"anonymous", "lock-2", "", "", nil, reasonAnonymous},
		{"controller bad secret", "ctrl-1", ctrlUser, "controller-secreT", nil, reasonBadSecret},
		{"will on another device", "lock-1", "lock-1", "secret-lock-1",
			withWill(schemas.DeviceTopic("st-2", "lock-2", schemas.ChannelStatus), true), reasonWill},
		{"retained will on telemetry", "lock-1", "lock-1", "secret-lock-1",
			withWill(lock1Telemetry, true), reasonWill},
	}
	want := map[string]float64{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dial(t, e.url(), tc.clientID, tc.user, tc.pass, tc.mod)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				c.Disconnect(50)
				return
			}
			if err == nil {
				t.Fatal("connected, want refused")
			}
			want[tc.reason]++
			if got := e.denied(actionConnect, tc.reason); got != want[tc.reason] {
				t.Errorf("denied{connect,%s} = %v, want %v", tc.reason, got, want[tc.reason])
			}
		})
	}
}

func TestDevicePublishReachesController(t *testing.T) {
	e := start(t, nil)
	ctrl := controller(t, e.url())
	in := newInbox()
	subscribe(t, ctrl, schemas.DeviceFilter(schemas.ChannelTelemetry), 1, in.paho)

	lock := device(t, e.url(), "lock-1")
	publish(t, lock, lock1Telemetry, 1, false, `{"door":"closed"}`)

	got := in.next(t)
	want := msg{lock1Telemetry, `{"door":"closed"}`, false}
	if got != want {
		t.Errorf("controller got %+v, want %+v", got, want)
	}
}

func TestPublishOutsideOwnTopicsRefused(t *testing.T) {
	e := start(t, nil)
	ctrl := controller(t, e.url())
	in := newInbox()
	subscribe(t, ctrl, "waystation/#", 1, in.paho)
	lock := device(t, e.url(), "lock-1")

	cases := []struct {
		topic    string
		qos      byte
		retained bool
		reason   string
	}{
		{lock2Telemetry, 1, false, reasonForeign},
		{lock2Telemetry, 0, false, reasonForeign},
		{schemas.DeviceTopic("st-2", "lock-1", schemas.ChannelTelemetry), 1, false, reasonForeign},
		{lock1Cmd, 1, false, reasonChannel},
		{lock1AccessRes, 0, false, reasonChannel},
		{lock1Telemetry, 1, true, reasonRetained},
		{"waystation/v1/st-1/lock-1/diagnostics", 1, false, reasonTopic},
		{"elsewhere/topic", 0, false, reasonTopic},
	}
	want := map[string]float64{}
	for _, tc := range cases {
		want[tc.reason]++
		// MQTT 3.1.1 cannot refuse a publish: QoS 1 is acknowledged.
		publish(t, lock, tc.topic, tc.qos, tc.retained, "refused")
	}
	for reason, n := range want {
		e.waitDenied(actionPublish, reason, n)
	}

	publish(t, lock, lock1Telemetry, 1, false, "own")
	if got := in.next(t); got.topic != lock1Telemetry || got.payload != "own" {
		t.Errorf("controller got %+v, want only the device's own message", got)
	}
	if !lock.IsConnectionOpen() {
		t.Error("the device was disconnected for its refused publishes")
	}
}

func TestMQTT5PublishRefusedWithReasonCode(t *testing.T) {
	e := start(t, nil)
	c, ack := rawConnect(t, e.b.TCPAddr(), 5, packets.ConnectParams{
		ClientIdentifier: "lock-1", Clean: true,
		Username: []byte("lock-1"), Password: []byte("secret-lock-1"),
	})
	if ack.ReasonCode != packets.CodeSuccess.Code {
		t.Fatalf("connack reason %#x", ack.ReasonCode)
	}

	for i, tc := range []struct {
		topic  string
		reason byte
	}{
		{lock2Telemetry, packets.ErrNotAuthorized.Code},
		{lock1Telemetry, packets.CodeSuccess.Code},
	} {
		c.send(t, packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName:   tc.topic, PacketID: uint16(i + 1), Payload: []byte("{}"),
		})
		ack := c.read(t)
		if ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != tc.reason {
			t.Errorf("%s: got packet %d reason %#x, want PUBACK %#x",
				tc.topic, ack.FixedHeader.Type, ack.ReasonCode, tc.reason)
		}
	}
	if got := e.denied(actionPublish, reasonForeign); got != 1 {
		t.Errorf("denied{publish,foreign_topic} = %v, want 1", got)
	}
}

func TestSubscribeOutsideOwnTopicsRefused(t *testing.T) {
	e := start(t, nil)
	lock := device(t, e.url(), "lock-1")
	in := newInbox()

	cases := []struct {
		filter string
		code   byte
		reason string
	}{
		{lock1Cmd, 1, ""},
		{lock1AccessRes, 1, ""},
		{lock2Cmd, 0x80, reasonForeign},
		{"waystation/v1/st-1/lock-1/#", 0x80, reasonTopic},
		{"waystation/v1/+/+/cmd", 0x80, reasonTopic},
		{"#", 0x80, reasonTopic},
		{lock1Telemetry, 0x80, reasonChannel},
	}
	want := map[string]float64{}
	for _, tc := range cases {
		if got := subscribe(t, lock, tc.filter, 1, in.paho); got != tc.code {
			t.Errorf("subscribe %s: code %#x, want %#x", tc.filter, got, tc.code)
		}
		if tc.reason != "" {
			want[tc.reason]++
		}
	}
	for reason, n := range want {
		if got := e.denied(actionSubscribe, reason); got != n {
			t.Errorf("denied{subscribe,%s} = %v, want %v", reason, got, n)
		}
	}

	ctrl := controller(t, e.url())
	publish(t, ctrl, lock2Cmd, 1, false, "for lock-2")
	publish(t, ctrl, lock1Cmd, 1, false, "for lock-1")
	if got := in.next(t); got.payload != "for lock-1" {
		t.Errorf("device got %+v, want only its own command", got)
	}
}

// A command published while a device is away is not queued for it, even
// in a persistent session: it would arrive late; the controller retries.
func TestNothingQueuedForDisconnectedDevice(t *testing.T) {
	e := start(t, nil)
	ctrl := controller(t, e.url())
	in := newInbox()
	persistent := func(o *paho.ClientOptions) {
		o.SetCleanSession(false).SetDefaultPublishHandler(in.paho)
	}

	lock := mustDial(t, e.url(), "lock-1", "lock-1", "secret-lock-1", persistent)
	subscribe(t, lock, lock1Cmd, 1, nil)
	lock.Disconnect(50)
	eventually(t, "the device to be gone", func() bool {
		return gather(t, e.reg, "waystation_broker_clients_connected", nil) == 1
	})
	fence := newInbox()
	subscribe(t, ctrl, "waystation/fence", 1, fence.paho)
	publish(t, ctrl, lock1Cmd, 1, false, "missed")
	// Mochi acknowledges before it delivers; the controller's next message
	// coming back means the first one went wherever it was going.
	publish(t, ctrl, "waystation/fence", 1, false, "fence")
	fence.next(t)

	mustDial(t, e.url(), "lock-1", "lock-1", "secret-lock-1", persistent)
	in.none(t, 300*time.Millisecond)
	publish(t, ctrl, lock1Cmd, 1, false, "live")
	if got := in.next(t); got.payload != "live" {
		t.Errorf("device got %+v, want the live command through its kept session", got)
	}
}

func TestRetainedCommandRefused(t *testing.T) {
	e := start(t, nil)
	ctrl := controller(t, e.url())

	publish(t, ctrl, lock1Cmd, 1, true, "retained qos 1")
	publish(t, ctrl, lock1Cmd, 0, true, "retained qos 0")
	e.waitDenied(actionPublish, reasonRetainedCmd, 2)

	bus := e.b.Bus()
	defer bus.Close()
	err := bus.Publish(lock1Cmd, 1, true, []byte("retained from the bus"))
	if !errors.Is(err, ErrRetainedCommand) {
		t.Errorf("bus retained command: err %v, want ErrRetainedCommand", err)
	}
	e.waitDenied(actionPublish, reasonRetainedCmd, 3)

	lock := device(t, e.url(), "lock-1")
	in := newInbox()
	subscribe(t, lock, lock1Cmd, 1, in.paho)
	in.none(t, 200*time.Millisecond)

	publish(t, ctrl, lock1Cmd, 1, false, "live")
	if got := in.next(t); got.payload != "live" || got.retained {
		t.Errorf("device got %+v, want the live command", got)
	}
}

func TestOversizePacketDropsConnection(t *testing.T) {
	e := start(t, func(o *Options) { o.MaxPacketBytes = 1024 })
	lost := make(chan error, 1)
	lock := mustDial(t, e.url(), "lock-1", "lock-1", "secret-lock-1",
		func(o *paho.ClientOptions) {
			o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
		})

	publish(t, lock, lock1Telemetry, 0, false, strings.Repeat("x", 900))
	lock.Publish(lock1Telemetry, 0, false, strings.Repeat("x", 2000))
	select {
	case <-lost:
	case <-time.After(waitFor):
		t.Fatal("connection not dropped after an oversize packet")
	}
	e.waitDenied(actionPublish, reasonTooLarge, 1)

	// A CONNECT over the limit is dropped before anyone reads it.
	c, err := net.Dial("tcp", e.b.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw := &rawClient{conn: c, version: 4}
	raw.send(t, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: "lock-1",
			Clean: true, Keepalive: 30, UsernameFlag: true, Username: []byte("lock-1"),
			PasswordFlag: true, Password: make([]byte, 2000)},
	})
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	if n, err := c.Read(make([]byte, 16)); !closedByPeer(err) {
		t.Errorf("oversize CONNECT: read %d bytes, err %v; want the connection closed", n, err)
	}
	e.waitDenied(actionConnect, reasonTooLarge, 1)
}

// A device whose old connection is half-open (the broker still holds it)
// reconnects. Mochi replaces the old connection; its will must not be
// published, or "offline" would follow the new connection's "online".
func TestHalfOpenTakeoverKeepsStatusOnline(t *testing.T) {
	e := start(t, nil)
	bus := e.b.Bus()
	defer bus.Close()
	in := newInbox()
	if err := bus.Subscribe(lock1Status, 1, in.bus); err != nil {
		t.Fatal(err)
	}

	old, ack := rawConnect(t, e.b.TCPAddr(), 4, packets.ConnectParams{
		ClientIdentifier: "lock-1", Clean: true,
		Username: []byte("lock-1"), Password: []byte("secret-lock-1"),
		WillFlag: true, WillTopic: lock1Status, WillPayload: []byte("offline"),
		WillQos: 1, WillRetain: true,
	})
	if ack.ReasonCode != 0 {
		t.Fatalf("connack %#x", ack.ReasonCode)
	}
	old.send(t, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
		TopicName:   lock1Status, Payload: []byte("online-1"),
	})
	if got := in.next(t); got.payload != "online-1" {
		t.Fatalf("bus got %+v, want online-1", got)
	}
	// A ping round trip puts the broker back in its read on the old
	// connection, where a half-open connection waits.
	old.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if pk := old.read(t); pk.FixedHeader.Type != packets.Pingresp {
		t.Fatalf("got packet type %d, want PINGRESP", pk.FixedHeader.Type)
	}
	// From here on the old connection reads nothing: it is half-open.

	lock := mustDial(t, e.url(), "lock-1", "lock-1", "secret-lock-1",
		func(o *paho.ClientOptions) { o.SetWill(lock1Status, "offline", 1, true) })
	publish(t, lock, lock1Status, 1, true, "online-2")
	for got := in.next(t); got.payload != "online-2"; got = in.next(t) {
		t.Errorf("bus got %+v before online-2", got)
	}
	in.none(t, 300*time.Millisecond)

	after := newInbox()
	if err := bus.Subscribe(lock1Status, 1, after.bus); err != nil {
		t.Fatal(err)
	}
	if got := after.next(t); got != (msg{lock1Status, "online-2", true}) {
		t.Errorf("retained status %+v, want online-2", got)
	}

	// The broker did close the old connection.
	for {
		if _, err := old.tryRead(waitFor); err != nil {
			if !closedByPeer(err) {
				t.Errorf("old connection: %v, want closed by the broker", err)
			}
			break
		}
	}
}

func TestWillPublishedWhenConnectionDrops(t *testing.T) {
	e := start(t, nil)
	bus := e.b.Bus()
	defer bus.Close()
	in := newInbox()
	if err := bus.Subscribe(lock1Status, 1, in.bus); err != nil {
		t.Fatal(err)
	}

	c, _ := rawConnect(t, e.b.TCPAddr(), 4, packets.ConnectParams{
		ClientIdentifier: "lock-1", Clean: true,
		Username: []byte("lock-1"), Password: []byte("secret-lock-1"),
		WillFlag: true, WillTopic: lock1Status, WillPayload: []byte("offline"),
		WillQos: 1, WillRetain: true,
	})
	_ = c.conn.Close()

	if got := in.next(t); got != (msg{lock1Status, "offline", false}) {
		t.Errorf("bus got %+v, want the live will", got)
	}
	after := newInbox()
	if err := bus.Subscribe(lock1Status, 1, after.bus); err != nil {
		t.Fatal(err)
	}
	if got := after.next(t); got != (msg{lock1Status, "offline", true}) {
		t.Errorf("retained status %+v, want the will", got)
	}
}

func TestRetainedSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	withStore := func(o *Options) { o.StorePath = path }

	first := start(t, withStore)
	lock := device(t, first.url(), "lock-1")
	publish(t, lock, lock1Status, 1, true, `{"online":true}`)
	lock.Disconnect(50)
	if err := first.b.Close(); err != nil {
		t.Fatal(err)
	}

	second := start(t, withStore)
	ctrl := controller(t, second.url())
	in := newInbox()
	subscribe(t, ctrl, schemas.DeviceFilter(schemas.ChannelStatus), 1, in.paho)
	if got := in.next(t); got != (msg{lock1Status, `{"online":true}`, true}) {
		t.Errorf("controller got %+v after restart, want the retained status", got)
	}

	bus := second.b.Bus()
	defer bus.Close()
	bin := newInbox()
	if err := bus.Subscribe(lock1Status, 1, bin.bus); err != nil {
		t.Fatal(err)
	}
	if got := bin.next(t); !got.retained || got.payload != `{"online":true}` {
		t.Errorf("bus got %+v after restart, want the retained status", got)
	}
}

// Shutting the broker down is no failure of the devices: their wills must
// not replace their retained statuses.
func TestShutdownPublishesNoWills(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	withStore := func(o *Options) { o.StorePath = path }

	first := start(t, withStore)
	lock := mustDial(t, first.url(), "lock-1", "lock-1", "secret-lock-1",
		func(o *paho.ClientOptions) { o.SetWill(lock1Status, "offline", 1, true) })
	publish(t, lock, lock1Status, 1, true, "online")
	if err := first.b.Close(); err != nil {
		t.Fatal(err)
	}

	second := start(t, withStore)
	bus := second.b.Bus()
	defer bus.Close()
	in := newInbox()
	if err := bus.Subscribe(lock1Status, 1, in.bus); err != nil {
		t.Fatal(err)
	}
	if got := in.next(t); got != (msg{lock1Status, "online", true}) {
		t.Errorf("retained status after restart %+v, want online", got)
	}
}

func TestHeldStoreFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	b, err := New(Options{StorePath: path, TCPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	err = b.Start()
	if err == nil {
		t.Fatal("Start succeeded on a store held by another")
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Start took %v to fail, want under a second", d)
	}
	if err := b.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after a failed Start: %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestWebSocket(t *testing.T) {
	e := start(t, func(o *Options) { o.TCPAddr, o.WSAddr = "", "127.0.0.1:0" })
	if e.b.TCPAddr() != "" {
		t.Errorf("TCPAddr %q with no TCP listener", e.b.TCPAddr())
	}
	bus := e.b.Bus()
	defer bus.Close()
	in := newInbox()
	if err := bus.Subscribe(schemas.DeviceFilter(schemas.ChannelTelemetry), 1, in.bus); err != nil {
		t.Fatal(err)
	}

	lock := device(t, "ws://"+e.b.WSAddr()+"/mqtt", "lock-1")
	publish(t, lock, lock1Telemetry, 1, false, "over websocket")
	if got := in.next(t); got.payload != "over websocket" {
		t.Errorf("bus got %+v", got)
	}

	cmds := newInbox()
	subscribe(t, lock, lock1Cmd, 1, cmds.paho)
	if err := bus.Publish(lock1Cmd, 1, false, []byte("to websocket")); err != nil {
		t.Fatal(err)
	}
	if got := cmds.next(t); got.payload != "to websocket" {
		t.Errorf("device got %+v", got)
	}
}

func TestBusRetainedAndLive(t *testing.T) {
	e := start(t, nil)
	lock := device(t, e.url(), "lock-1")
	// Mochi acknowledges a publish before it delivers it; waiting for the
	// delivery keeps s1 from arriving live on the bus under test too.
	seen := e.b.Bus()
	defer seen.Close()
	sync := newInbox()
	if err := seen.Subscribe(lock1Status, 1, sync.bus); err != nil {
		t.Fatal(err)
	}
	publish(t, lock, lock1Status, 1, true, "s1")
	sync.next(t)

	bus := e.b.Bus()
	in := newInbox()
	if err := bus.Subscribe(schemas.DeviceFilter(schemas.ChannelStatus), 1, in.bus); err != nil {
		t.Fatal(err)
	}
	if got := in.next(t); got != (msg{lock1Status, "s1", true}) {
		t.Errorf("at subscribe got %+v, want retained s1", got)
	}
	publish(t, lock, lock1Status, 1, true, "s2")
	if got := in.next(t); got != (msg{lock1Status, "s2", false}) {
		t.Errorf("live got %+v, want s2 not flagged retained", got)
	}

	cmds := newInbox()
	subscribe(t, lock, lock1Cmd, 1, cmds.paho)
	payload := []byte(`{"id":"c1"}`)
	if err := bus.Publish(lock1Cmd, 1, false, payload); err != nil {
		t.Fatal(err)
	}
	copy(payload, "XXXXXXXXXXX") // the bus must have kept its own copy
	if got := cmds.next(t); got != (msg{lock1Cmd, `{"id":"c1"}`, false}) {
		t.Errorf("device got %+v", got)
	}

	for _, bad := range []string{"", "waystation/v1/+/x/cmd", "$SYS/x", "a/#"} {
		if err := bus.Publish(bad, 0, false, nil); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("publish %q: %v, want ErrInvalidTopic", bad, err)
		}
	}
	if err := bus.Subscribe("a/#/b", 0, in.bus); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("subscribe a/#/b: %v, want ErrInvalidTopic", err)
	}

	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	publish(t, lock, lock1Status, 1, true, "s3")
	in.none(t, 200*time.Millisecond)
	if err := bus.Subscribe(lock1Status, 1, in.bus); !errors.Is(err, ErrClosed) {
		t.Errorf("subscribe on a closed bus: %v, want ErrClosed", err)
	}

	other := e.b.Bus()
	_ = e.b.Close()
	if err := other.Publish(lock1Status, 1, true, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("publish after the broker closed: %v, want ErrClosed", err)
	}
}

func TestRefusalsLogAtBoundedRate(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 7, 17, 3, 0, 0, 0, time.UTC)}
	e := start(t, func(o *Options) { o.Now = clock.Now })
	ctrl := controller(t, e.url())
	in := newInbox()
	subscribe(t, ctrl, lock1Telemetry, 1, in.paho)
	lock := device(t, e.url(), "lock-1")

	flood := func(n int) {
		for range n {
			publish(t, lock, lock2Telemetry, 1, false, "x")
		}
		publish(t, lock, lock1Telemetry, 1, false, "own") // still flows
		if got := in.next(t); got.payload != "own" {
			t.Fatalf("controller got %+v", got)
		}
	}
	lines := func() int { return e.logs.count("mqtt request refused", "client=lock-1") }

	flood(50)
	e.waitDenied(actionPublish, reasonForeign, 50)
	if n := lines(); n != 1 {
		t.Errorf("%d log lines for 50 refusals in a minute, want 1", n)
	}

	clock.Advance(logWindow)
	flood(1)
	e.waitDenied(actionPublish, reasonForeign, 51)
	if n := lines(); n != 2 {
		t.Errorf("%d log lines after a minute, want 2", n)
	}
	if n := e.logs.count("mqtt request refused", "client=lock-1", "suppressed=49"); n != 1 {
		t.Errorf("no line reports the 49 suppressed refusals:\n%s", e.logs.String())
	}
}

func TestLifecycle(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	if b.TCPAddr() != "" || b.WSAddr() != "" {
		t.Errorf("addresses %q %q with no listeners", b.TCPAddr(), b.WSAddr())
	}

	// The zero Options run a broker reachable through its bus only.
	bus := b.Bus()
	in := newInbox()
	if err := bus.Subscribe("waystation/#", 0, in.bus); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(lock1Cmd, 0, false, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if got := in.next(t); got != (msg{lock1Cmd, "hi", false}) {
		t.Errorf("bus got %+v", got)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := b.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}

	if _, err := New(Options{ControllerUser: "controller"}); err == nil {
		t.Error("New accepted a controller user without a secret")
	}
}

// A socket that never sends CONNECT must neither hold its goroutine
// forever nor keep Close waiting.
func TestCloseWithSilentConnection(t *testing.T) {
	e := start(t, nil)
	c, err := net.Dial("tcp", e.b.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lock := device(t, e.url(), "lock-1")
	_ = lock

	done := make(chan struct{})
	go func() {
		_ = e.b.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeGrace + 2*time.Second):
		t.Fatal("Close did not return")
	}
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := c.Read(make([]byte, 1)); !closedByPeer(err) {
		t.Errorf("silent connection after Close: %v, want closed", err)
	}
}

func TestMetrics(t *testing.T) {
	e := start(t, nil)
	for action, reasons := range deniedLabels {
		for _, r := range reasons {
			if got := e.denied(action, r); got != 0 {
				t.Errorf("denied{%s,%s} = %v at start", action, r, got)
			}
		}
	}

	ctrl := controller(t, e.url())
	in := newInbox()
	subscribe(t, ctrl, lock1Telemetry, 1, in.paho)
	lock := device(t, e.url(), "lock-1")
	if got := gather(t, e.reg, "waystation_broker_clients_connected", nil); got != 2 {
		t.Errorf("clients connected %v, want 2", got)
	}
	publish(t, lock, lock1Telemetry, 1, false, "x")
	in.next(t)
	if got := gather(t, e.reg, "waystation_broker_messages_received_total", nil); got != 1 {
		t.Errorf("messages received %v, want 1", got)
	}
	// Mochi counts a message sent after writing it.
	eventually(t, "messages sent = 1", func() bool {
		return gather(t, e.reg, "waystation_broker_messages_sent_total", nil) == 1
	})

	// The series belong to the running broker: a second one on the same
	// registry is refused until the first closes.
	if _, err := New(Options{Registerer: e.reg}); err == nil {
		t.Error("a second broker registered the same series")
	}
	_ = e.b.Close()
	b, err := New(Options{Registerer: e.reg})
	if err != nil {
		t.Fatalf("New after Close on the same registry: %v", err)
	}
	_ = b.Close()
}
