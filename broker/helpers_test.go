package broker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCreds is a small device registry: device id → station and secret.
type testCreds map[string]struct{ station, secret string }

func (c testCreds) Authenticate(user string, password []byte) (Identity, error) {
	d, ok := c[user]
	if !ok {
		return Identity{}, fmt.Errorf("device %s: %w", user, ErrUnknownDevice)
	}
	if string(password) != d.secret {
		return Identity{}, fmt.Errorf("device %s: %w", user, ErrBadSecret)
	}
	return Identity{Station: d.station, Device: user}, nil
}

var fleet = testCreds{
	"lock-1": {"st-1", "secret-lock-1"},
	"ac-1":   {"st-1", "secret-ac-1"},
	"lock-2": {"st-2", "secret-lock-2"},
}

const (
	ctrlUser   = "controller"
	ctrlSecret = "controller-secret"
	waitFor    = 5 * time.Second
)

// env is a started broker with its registry and captured logs.
type env struct {
	t    *testing.T
	b    *Broker
	reg  *prometheus.Registry
	logs *logBuffer
}

// start runs a broker on a free loopback port; mod may change the options.
func start(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	e := &env{t: t, reg: prometheus.NewRegistry(), logs: &logBuffer{}}
	o := Options{
		TCPAddr:          "127.0.0.1:0",
		Credentials:      fleet,
		ControllerUser:   ctrlUser,
		ControllerSecret: ctrlSecret,
		Logger: slog.New(slog.NewTextHandler(e.logs,
			&slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: e.reg,
	}
	if mod != nil {
		mod(&o)
	}
	b, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	e.b = b
	return e
}

func (e *env) url() string { return "tcp://" + e.b.TCPAddr() }

// denied reads waystation_broker_denied_total{action,reason}.
func (e *env) denied(action, reason string) float64 {
	e.t.Helper()
	return gather(e.t, e.reg, "waystation_broker_denied_total",
		map[string]string{"action": action, "reason": reason})
}

// waitDenied waits until the denied counter reaches want.
func (e *env) waitDenied(action, reason string, want float64) {
	e.t.Helper()
	eventually(e.t, fmt.Sprintf("denied{%s,%s} = %v", action, reason, want), func() bool {
		return e.denied(action, reason) == want
	})
}

// gather returns the value of the series name{labels} in reg; it fails the
// test if there is no such series.
func gather(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// count returns how many lines contain every one of parts.
func (l *logBuffer) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.buf.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// dial connects a paho MQTT 3.1.1 client; the client is disconnected at
// the end of the test.
func dial(t *testing.T, url, clientID, user, pass string,
	mod func(*paho.ClientOptions)) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetUsername(user).SetPassword(pass).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetConnectTimeout(waitFor).SetKeepAlive(30 * time.Second)
	if mod != nil {
		mod(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(waitFor) {
		c.Disconnect(0)
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

// mustDial is dial that fails the test on error.
func mustDial(t *testing.T, url, clientID, user, pass string,
	mod func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	c, err := dial(t, url, clientID, user, pass, mod)
	if err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	return c
}

// device connects a fleet device with its own id and secret.
func device(t *testing.T, url, id string) paho.Client {
	t.Helper()
	return mustDial(t, url, id, id, fleet[id].secret, nil)
}

// controller connects the controller identity.
func controller(t *testing.T, url string) paho.Client {
	t.Helper()
	return mustDial(t, url, "ctrl-"+t.Name(), ctrlUser, ctrlSecret, nil)
}

// msg is a message a test subscriber received.
type msg struct {
	topic    string
	payload  string
	retained bool
}

// inbox collects messages from a subscription.
type inbox chan msg

func newInbox() inbox { return make(inbox, 256) }

func (in inbox) paho(_ paho.Client, m paho.Message) {
	in <- msg{m.Topic(), string(m.Payload()), m.Retained()}
}

func (in inbox) bus(topic string, payload []byte, retained bool) {
	in <- msg{topic, string(payload), retained}
}

// next waits for the next message.
func (in inbox) next(t *testing.T) msg {
	t.Helper()
	select {
	case m := <-in:
		return m
	case <-time.After(waitFor):
		t.Fatal("no message arrived")
		return msg{}
	}
}

// none checks that no message arrives within d.
func (in inbox) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-in:
		t.Fatalf("unexpected message %+v", m)
	case <-time.After(d):
	}
}

// subscribe subscribes c and waits for the SUBACK, returning its code.
func subscribe(t *testing.T, c paho.Client, filter string, qos byte, h paho.MessageHandler) byte {
	t.Helper()
	tok := c.Subscribe(filter, qos, h)
	if !tok.WaitTimeout(waitFor) {
		t.Fatalf("subscribe %s timed out", filter)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

// publish publishes from c and waits for the publish to complete.
func publish(t *testing.T, c paho.Client, topic string, qos byte, retained bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(waitFor) {
		t.Fatalf("publish %s timed out", topic)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

// rawClient speaks MQTT over a plain socket with mochi's packet codec, for
// what paho cannot do: MQTT 5, or stop reading on purpose.
type rawClient struct {
	conn    net.Conn
	r       *bufio.Reader
	version byte
}

// rawConnect opens a socket and sends CONNECT; it returns the CONNACK.
func rawConnect(t *testing.T, addr string, version byte,
	cp packets.ConnectParams) (*rawClient, packets.Packet) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &rawClient{conn: conn, r: bufio.NewReader(conn), version: version}

	cp.ProtocolName = []byte("MQTT")
	if version == 3 {
		cp.ProtocolName = []byte("MQIsdp")
	}
	cp.UsernameFlag = len(cp.Username) > 0
	cp.PasswordFlag = len(cp.Password) > 0
	if cp.Keepalive == 0 {
		cp.Keepalive = 30
	}
	c.send(t, packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: version,
		Connect:         cp,
	})
	ack := c.read(t)
	if ack.FixedHeader.Type != packets.Connack {
		t.Fatalf("got packet type %d, want CONNACK", ack.FixedHeader.Type)
	}
	return c, ack
}

// send encodes and writes pk.
func (c *rawClient) send(t *testing.T, pk packets.Packet) {
	t.Helper()
	pk.ProtocolVersion = c.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	default:
		t.Fatalf("cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// read reads and decodes one packet.
func (c *rawClient) read(t *testing.T) packets.Packet {
	t.Helper()
	pk, err := c.tryRead(waitFor)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return pk
}

func (c *rawClient) tryRead(d time.Duration) (packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	var pk packets.Packet
	hb, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = c.version
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	}
	return pk, err
}

// closedByPeer reports whether a read error means the other end closed
// the connection (with unread data in its buffer, a close is a reset).
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
