package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/broker"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
	"github.com/waystation/waystation/simulators"
)

// cmdRig is the command path on a real broker with a TCP listener, a real
// bbolt file, ingest and twins, on a fake clock. Its Commands can be
// stopped and opened again on the same file, as a restart would.
type cmdRig struct {
	db      *bolt.DB
	reg     *devices.Registry
	twins   *devices.Twins
	broker  *broker.Broker
	bus     *broker.Bus
	in      *Ingest
	clock   *fakeClock
	secrets map[string]string
	notes   *noteLog
	opts    CommandsOptions

	brokerProm *prometheus.Registry
	// lose is how many of the next answers from devices Commands does not
	// hear of, as if lost between the device and the controller.
	lose atomic.Int32

	cur     atomic.Pointer[Commands]
	prom    *prometheus.Registry // of the current Commands
	stopRun func()
}

// The rig's devices, at the access rig's stations.
var cmdRigDevices = []devices.Device{
	{ID: "ys-a-ac", Station: "ys-a", Kind: schemas.KindAC},
	{ID: "ys-a-ac2", Station: "ys-a", Kind: schemas.KindAC},
	{ID: "ys-a-lock", Station: "ys-a", Kind: schemas.KindLock},
	{ID: "ys-a-charger", Station: "ys-a", Kind: schemas.KindCharger},
	{ID: "ys-b-ac", Station: "ys-b", Kind: schemas.KindAC},
	{ID: "ys-n-ac", Station: "ys-n", Kind: schemas.KindAC},
}

// debugLog is where the rig's parts log: nowhere, unless
// WAYSTATION_TEST_DEBUG is set, to follow a failing test.
var debugLog = func() *slog.Logger {
	if os.Getenv("WAYSTATION_TEST_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}()

// noteLog records notices.
type noteLog struct {
	mu    sync.Mutex
	notes []Notice
}

func (l *noteLog) Notify(n Notice) {
	l.mu.Lock()
	l.notes = append(l.notes, n)
	l.mu.Unlock()
}

// types returns the types of the notices about command id, in order.
func (l *noteLog) types(id string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, n := range l.notes {
		if rec, ok := n.Data.(CommandRecord); ok && rec.ID == id {
			out = append(out, n.Type)
		}
	}
	return out
}

func newCmdRig(t testing.TB, adjust func(*CommandsOptions), extra ...devices.Device) *cmdRig {
	t.Helper()
	r := &cmdRig{notes: &noteLog{},
		clock: &fakeClock{t: time.Date(2025, 7, 15, 12, 0, 0, 0, shanghai)}}
	var err error
	if r.db, err = devices.OpenDB(filepath.Join(t.TempDir(), "w.db"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.db.Close() })
	if r.reg, err = devices.NewRegistry(r.db, devices.RegistryOptions{}); err != nil {
		t.Fatal(err)
	}
	if r.twins, err = devices.NewTwins(r.db, devices.TwinsOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.reg.AddStations(append([]devices.Station(nil), rigStations...)); err != nil {
		t.Fatal(err)
	}
	if r.secrets, err = r.reg.Provision(append(append([]devices.Device(nil),
		cmdRigDevices...), extra...)); err != nil {
		t.Fatal(err)
	}
	r.brokerProm = prometheus.NewRegistry()
	r.broker, err = broker.New(broker.Options{TCPAddr: "127.0.0.1:0",
		Credentials: registryLogins{r.reg}, Registerer: r.brokerProm})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.broker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.broker.Close() })
	r.bus = r.broker.Bus()
	if r.in, err = NewIngest(IngestOptions{Bus: r.bus, Registry: r.reg, Twins: r.twins,
		Now: r.clock.Now, Registerer: prometheus.NewRegistry(), Logger: debugLog}); err != nil {
		t.Fatal(err)
	}
	r.in.Observe(func(o Observation) {
		if o.Result != nil && r.lose.Add(-1) >= 0 {
			return // an answer lost on its way
		}
		if c := r.cur.Load(); c != nil {
			c.Observe(o)
		}
	})
	r.opts = CommandsOptions{DB: r.db, Bus: r.bus, Registry: r.reg, Twins: r.twins,
		Every: 10 * time.Millisecond, RetryEvery: 5 * time.Second, Notifier: r.notes,
		Now: r.clock.Now, Logger: debugLog}
	if adjust != nil {
		adjust(&r.opts)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-r.in.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("ingest not ready")
	}
	r.start(t)
	t.Cleanup(func() { r.stop() })
	return r
}

// start opens Commands on the rig's file and runs it.
func (r *cmdRig) start(t testing.TB) *Commands {
	t.Helper()
	o := r.opts
	r.prom = prometheus.NewRegistry()
	o.Registerer = r.prom
	c, err := NewCommands(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	r.cur.Store(c)
	r.stopRun = func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	return c
}

// stop stops the running Commands, as a shutdown would.
func (r *cmdRig) stop() {
	if r.stopRun != nil {
		r.stopRun()
		r.stopRun = nil
	}
	r.cur.Store(nil)
}

func (r *cmdRig) cmds() *Commands { return r.cur.Load() }

// sim runs a simulated device of the rig until the test ends, on the
// rig's clock, and waits for its twin to be online.
func (r *cmdRig) sim(t testing.TB, id string, adjust func(*simulators.DeviceOptions)) *simulators.Device {
	t.Helper()
	d, err := r.reg.Device(id)
	if err != nil {
		t.Fatal(err)
	}
	o := simulators.DeviceOptions{Broker: "tcp://" + r.broker.TCPAddr(), Now: r.clock.Now,
		Seed: 7, BootTime: 100 * time.Millisecond, Logger: debugLog}
	if adjust != nil {
		adjust(&o)
	}
	dev := simulators.NewDevice(simulators.DeviceSpec{Station: d.Station, Device: d.ID,
		Kind: d.Kind, Secret: r.secrets[id], Interval: time.Hour}, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dev.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	r.waitOnline(t, id, true)
	return dev
}

// waitOnline waits until the device's twin says online (or offline).
func (r *cmdRig) waitOnline(t testing.TB, id string, online bool) {
	t.Helper()
	waitUntil(t, 10*time.Second, "twin of "+id+" online="+map[bool]string{true: "true",
		false: "false"}[online], func() bool {
		tw, ok := r.twins.Get(id)
		return ok && tw.Online == online
	})
}

// waitState waits until command id is in state and returns it.
// A command's notice follows its state's write, so waitState waits for
// both.
func (r *cmdRig) waitState(t testing.TB, id, state string) CommandRecord {
	t.Helper()
	var rec CommandRecord
	notice := "command." + state
	waitUntil(t, 10*time.Second, "command "+id+" "+state, func() bool {
		var err error
		rec, err = r.cmds().Get(id)
		if err != nil {
			t.Fatal(err)
		}
		return rec.State == state &&
			(state == CommandPending || slices.Contains(r.notes.types(id), notice))
	})
	return rec
}

// acState returns the AC state in a device's twin.
func (r *cmdRig) acState(t testing.TB, id string) schemas.ACState {
	t.Helper()
	tw, _ := r.twins.Get(id)
	var st schemas.ACState
	if len(tw.State) > 0 {
		if err := json.Unmarshal(tw.State, &st); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// issue issues a command or fails the test.
func (r *cmdRig) issue(t testing.TB, device, name string, args map[string]any,
	ttl time.Duration) string {
	t.Helper()
	id, err := r.cmds().IssueCommand(CommandRequest{Device: device, Name: name, Args: args,
		Issuer: "operator:test", TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// cmdTap counts what is published on the cmd topics, with the rig's time.
type cmdTap struct {
	mu   sync.Mutex
	seen []tapped
}

type tapped struct {
	at  time.Time
	cmd schemas.Command
}

func (r *cmdRig) tap(t testing.TB) *cmdTap {
	t.Helper()
	tp := &cmdTap{}
	err := r.bus.Subscribe(schemas.DeviceFilter(schemas.ChannelCmd), 1,
		func(_ string, payload []byte, _ bool) {
			c, err := schemas.DecodeCommand(payload)
			if err != nil {
				t.Errorf("platform sent an invalid command %s: %v", payload, err)
				return
			}
			tp.mu.Lock()
			tp.seen = append(tp.seen, tapped{at: r.clock.Now(), cmd: c})
			tp.mu.Unlock()
		})
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func (tp *cmdTap) all() []tapped {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]tapped(nil), tp.seen...)
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawDevice is a paho client logged in as a device, for devices the test
// drives by hand: it publishes what the test says and records the
// commands it receives.
type rawDevice struct {
	c    mqtt.Client
	id   string
	cmds chan schemas.Command
}

// connectRaw logs in as device id; clean false keeps a persistent session.
func connectRaw(t testing.TB, r *cmdRig, id string, clean bool) *rawDevice {
	t.Helper()
	d, err := r.reg.Device(id)
	if err != nil {
		t.Fatal(err)
	}
	rd := &rawDevice{id: id, cmds: make(chan schemas.Command, 64)}
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + r.broker.TCPAddr()).SetClientID(id).
		SetUsername(id).SetPassword(r.secrets[id]).SetAutoReconnect(false).
		SetCleanSession(clean).SetConnectTimeout(5 * time.Second).SetOrderMatters(false).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { rd.take(t, m) })
	rd.c = mqtt.NewClient(opts)
	if tok := rd.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { rd.c.Disconnect(0) })
	topic := schemas.DeviceTopic(d.Station, id, schemas.ChannelCmd)
	tok := rd.c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { rd.take(t, m) })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	return rd
}

func (rd *rawDevice) take(t testing.TB, m mqtt.Message) {
	c, err := schemas.DecodeCommand(m.Payload())
	if err != nil {
		t.Errorf("command %s breaks the contract: %v", m.Payload(), err)
		return
	}
	rd.cmds <- c
}

// publish sends payload on the device's channel ch and waits for the
// broker's acknowledgement.
func (rd *rawDevice) publish(t testing.TB, station string, ch schemas.Channel, retained bool,
	payload string) {
	t.Helper()
	tok := rd.c.Publish(schemas.DeviceTopic(station, rd.id, ch), 1, retained, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

// next returns the next command received, failing after a while.
func (rd *rawDevice) next(t testing.TB) schemas.Command {
	t.Helper()
	select {
	case c := <-rd.cmds:
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("%s received no command", rd.id)
	}
	return schemas.Command{}
}

// waitClients waits until n MQTT clients are connected to the broker.
func (r *cmdRig) waitClients(t testing.TB, n int) {
	t.Helper()
	waitUntil(t, 5*time.Second, fmt.Sprintf("%d clients connected", n), func() bool {
		mfs, err := r.brokerProm.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "waystation_broker_clients_connected" {
				return int(mf.GetMetric()[0].GetGauge().GetValue()) == n
			}
		}
		t.Fatal("no waystation_broker_clients_connected")
		return false
	})
}
