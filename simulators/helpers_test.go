package simulators

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"

	"github.com/waystation/waystation/schemas"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// broker is a real MQTT broker on a free loopback port.
type broker struct {
	srv  *mochi.Server
	url  string
	auth *credHook // nil when everyone is let in
}

// startBroker starts a broker that lets every client in.
func startBroker(t *testing.T) *broker {
	t.Helper()
	return startBrokerWith(t, new(auth.AllowHook), nil)
}

// startBrokerWith starts a broker with the given authentication hook.
func startBrokerWith(t *testing.T, hook mochi.Hook, creds *credHook) *broker {
	t.Helper()
	srv := mochi.New(&mochi.Options{
		InlineClient: false,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err := srv.AddHook(hook, nil); err != nil {
		t.Fatalf("add hook: %v", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "t1", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		t.Fatalf("add listener: %v", err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() { closeBroker(srv) })
	return &broker{srv: srv, url: "tcp://" + tcp.Address(), auth: creds}
}

// closeBroker closes a mochi server without its close deadlock: its TCP
// listener's Close reads the client list under a read lock taken twice,
// which hangs when a client leaving at that moment waits for the write
// lock. So the clients are disconnected, from a copy of the list, and
// gone, before the listener closes.
func closeBroker(srv *mochi.Server) {
	for _, cl := range srv.Clients.GetAll() {
		if !cl.Closed() {
			_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(srv.Clients.GetAll()) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_ = srv.Close()
}

// credHook admits a client only with its id as username and client id and
// the secret it was given; the watcher gets in with any password.
type credHook struct {
	mochi.HookBase
	secrets map[string]string
}

func (h *credHook) ID() string { return "creds" }

func (h *credHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *credHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	if user == "watcher" {
		return true
	}
	secret, ok := h.secrets[user]
	return ok && cl.ID == user && string(pk.Connect.Password) == secret
}

func (h *credHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }

// msg is one message the watcher saw.
type msg struct {
	topic    schemas.Topic
	payload  []byte
	retained bool
}

// watcher is a platform-side MQTT client subscribed to every device topic.
type watcher struct {
	t        *testing.T
	client   paho.Client
	liveOnly bool // drop retained copies
	mu       sync.Mutex
	msgs     []msg
	kinds    map[string]schemas.Kind // from each device's status
	invalid  []string                // device messages the decoders refused
}

var watcherN sync.Mutex
var watcherSeq int

// watchLive connects a watcher that keeps only messages published after it
// subscribed. A broker sends retained messages after the SUBACK, so a
// status published in between arrives twice, live and retained.
func watchLive(t *testing.T, b *broker) *watcher {
	t.Helper()
	w := watch(t, b)
	w.mu.Lock()
	w.liveOnly = true
	w.msgs = nil
	w.mu.Unlock()
	return w
}

// watch connects a watcher to b, subscribed to waystation/v1/#.
func watch(t *testing.T, b *broker) *watcher {
	t.Helper()
	watcherN.Lock()
	watcherSeq++
	id := fmt.Sprintf("watcher-%d", watcherSeq)
	watcherN.Unlock()

	w := &watcher{t: t, kinds: map[string]schemas.Kind{}}
	o := paho.NewClientOptions().AddBroker(b.url).SetClientID(id).SetUsername("watcher").
		SetCleanSession(true).SetAutoReconnect(false)
	w.client = paho.NewClient(o)
	if tok := w.client.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	t.Cleanup(func() {
		w.client.Disconnect(100)
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, bad := range w.invalid {
			t.Errorf("invalid device message: %s", bad)
		}
	})
	tok := w.client.Subscribe(schemas.Prefix+"#", 1, func(_ paho.Client, m paho.Message) {
		tp, err := schemas.ParseTopic(m.Topic())
		if err != nil {
			return // not a device topic
		}
		w.mu.Lock()
		if err := w.check(tp, m.Payload()); err != nil {
			w.invalid = append(w.invalid, fmt.Sprintf("%s: %v: %s", tp, err, m.Payload()))
		}
		if !w.liveOnly || !m.Retained() {
			w.msgs = append(w.msgs, msg{topic: tp, payload: bytes.Clone(m.Payload()),
				retained: m.Retained()})
		}
		w.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher subscribe: %v", tok.Error())
	}

	// Mochi sends the SUBACK before it scans its retained messages, and
	// reads its topic tree there without the lock that guards writes to it
	// (mochi-mqtt/server#200). A retained publish on the same connection is
	// handled after the scan and takes that lock, so once it is acknowledged
	// the scan is over and ordered before any device's retained publish.
	tok = w.client.Publish("sync/"+id, 1, true, []byte("1"))
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher sync: %v", tok.Error())
	}
	return w
}

// check decodes every message a device sends with the contract's decoders,
// so no test can pass on a payload the platform would refuse. w.mu is held.
func (w *watcher) check(tp schemas.Topic, payload []byte) error {
	var err error
	switch tp.Channel {
	case schemas.ChannelStatus:
		var st schemas.Status
		if st, err = schemas.DecodeStatus(payload); err == nil {
			w.kinds[tp.Device] = st.Kind
		}
	case schemas.ChannelTelemetry:
		k, ok := w.kinds[tp.Device]
		if !ok {
			return errors.New("telemetry before any status")
		}
		_, err = schemas.DecodeTelemetry(k, payload)
	case schemas.ChannelEvent:
		_, err = schemas.DecodeEvent(payload)
	case schemas.ChannelCmdResult:
		_, err = schemas.DecodeCommandResult(payload)
	case schemas.ChannelAccessReq:
		_, err = schemas.DecodeAccessRequest(payload)
	}
	return err
}

// of returns the messages seen on a channel of a device ("" for any).
func (w *watcher) of(device string, ch schemas.Channel) []msg {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []msg
	for _, m := range w.msgs {
		if (device == "" || m.topic.Device == device) && m.topic.Channel == ch {
			out = append(out, m)
		}
	}
	return out
}

// statuses decodes the status messages of a device, failing on any invalid one.
func (w *watcher) statuses(device string) []schemas.Status {
	w.t.Helper()
	var out []schemas.Status
	for _, m := range w.of(device, schemas.ChannelStatus) {
		st, err := schemas.DecodeStatus(m.payload)
		if err != nil {
			w.t.Fatalf("status of %s: %v: %s", m.topic.Device, err, m.payload)
		}
		out = append(out, st)
	}
	return out
}

// telemetry decodes the telemetry of a device, failing on any invalid one.
func (w *watcher) telemetry(device string, k schemas.Kind) []schemas.Telemetry {
	w.t.Helper()
	var out []schemas.Telemetry
	for _, m := range w.of(device, schemas.ChannelTelemetry) {
		tm, err := schemas.DecodeTelemetry(k, m.payload)
		if err != nil {
			w.t.Fatalf("telemetry of %s: %v: %s", device, err, m.payload)
		}
		out = append(out, tm)
	}
	return out
}

// events decodes the events of a device, failing on any invalid one.
func (w *watcher) events(device string) []schemas.Event {
	w.t.Helper()
	var out []schemas.Event
	for _, m := range w.of(device, schemas.ChannelEvent) {
		e, err := schemas.DecodeEvent(m.payload)
		if err != nil {
			w.t.Fatalf("event of %s: %v: %s", device, err, m.payload)
		}
		out = append(out, e)
	}
	return out
}

// results decodes the command results of a device with the given id.
func (w *watcher) results(device, id string) []schemas.CommandResult {
	w.t.Helper()
	var out []schemas.CommandResult
	for _, m := range w.of(device, schemas.ChannelCmdResult) {
		r, err := schemas.DecodeCommandResult(m.payload)
		if err != nil {
			w.t.Fatalf("result of %s: %v: %s", device, err, m.payload)
		}
		if r.ID == id {
			out = append(out, r)
		}
	}
	return out
}

// send publishes a command to a device.
func (w *watcher) send(station, device string, c schemas.Command) {
	w.t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		w.t.Fatal(err)
	}
	tok := w.client.Publish(schemas.DeviceTopic(station, device, schemas.ChannelCmd), 1, false, b)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		w.t.Fatalf("send command: %v", tok.Error())
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// running runs a fleet until the test ends and checks that Run returns.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func runFleet(t *testing.T, f *Fleet) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- f.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func runDevice(t *testing.T, d *Device) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the run and waits for Run to return; it may be called twice.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if r.done == nil {
		return
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return")
	}
	r.done = nil
}

// july is a fixed afternoon in the hot season, for a frozen clock.
var july = time.Date(2025, 7, 20, 14, 0, 0, 0, shanghai())

func frozen(t time.Time) func() time.Time { return func() time.Time { return t } }

// spec returns a spec for a test device with a short interval.
func spec(station, device string, k schemas.Kind) DeviceSpec {
	return DeviceSpec{Station: station, Device: device, Kind: k, Secret: "s-" + device,
		Interval: 100 * time.Millisecond}
}
