package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
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
)

// alertRig is the alert path on a real broker (with a TCP listener for real
// MQTT clients) and a real bbolt file: ingest, presence and alerts on a
// fake clock, with a notifier that records notices and a command issuer
// that publishes commands on the bus.
type alertRig struct {
	db      *bolt.DB
	dbPath  string
	reg     *devices.Registry
	twins   *devices.Twins
	broker  *broker.Broker
	bus     *broker.Bus
	in      *Ingest
	pres    *Presence
	alerts  *Alerts
	notes   *noticeLog
	cmds    *busCommands
	prom    *prometheus.Registry
	clock   *fakeClock
	secrets map[string]string
	stale   *staleList
	stop    func() // stops alerts.Run
	// sent counts messages the rig's clients sent; seen those ingest
	// handled (after the alerts saw them).
	sent, seen atomic.Int64
}

// The rig's stations: ys-a of org-a with one device of each kind, ys-b of
// org-b with an AC and a lock, ys-solo with one AC.
var alertStations = []devices.Station{
	{ID: "ys-a", Name: "Chengguan", Lat: 32.63, Lon: 116.27, Org: "org-a", Hours: "24h"},
	{ID: "ys-b", Name: "Jiangdian", Lat: 32.64, Lon: 116.28, Org: "org-b", Hours: "24h"},
	{ID: "ys-solo", Name: "Solo", Lat: 32.62, Lon: 116.26, Org: "org-a", Hours: "24h"},
}

var alertDevices = []devices.Device{
	{ID: "ys-a-ac", Station: "ys-a", Kind: schemas.KindAC},
	{ID: "ys-a-lock", Station: "ys-a", Kind: schemas.KindLock},
	{ID: "ys-a-chg", Station: "ys-a", Kind: schemas.KindCharger},
	{ID: "ys-a-aed", Station: "ys-a", Kind: schemas.KindAED},
	{ID: "ys-b-ac", Station: "ys-b", Kind: schemas.KindAC},
	{ID: "ys-b-lock", Station: "ys-b", Kind: schemas.KindLock},
	{ID: "ys-solo-ac", Station: "ys-solo", Kind: schemas.KindAC},
}

// alertRigStart is the rig's first instant: a July night in Yingshang.
var alertRigStart = time.Date(2026, 7, 15, 1, 0, 0, 0, shanghai)

type alertRigOptions struct {
	alerts func(*AlertOptions)
	// extra devices, registered before start.
	extra []devices.Device
	// dir reuses a data folder (restarts); "" is a new one.
	dir string
	// clock reuses a clock (restarts).
	clock *fakeClock
	// realClock runs everything on time.Now (benchmarks).
	realClock bool
}

func newAlertRig(t testing.TB, ro alertRigOptions) *alertRig {
	t.Helper()
	r := &alertRig{prom: prometheus.NewRegistry(), notes: &noticeLog{}, clock: ro.clock,
		stale: &staleList{}}
	if r.clock == nil {
		r.clock = &fakeClock{t: alertRigStart}
	}
	now := r.clock.Now
	if ro.realClock {
		now = time.Now
	}
	dir := ro.dir
	if dir == "" {
		dir = t.TempDir()
	}
	r.dbPath = filepath.Join(dir, "w.db")
	var err error
	if r.db, err = devices.OpenDB(r.dbPath, 0); err != nil {
		t.Fatal(err)
	}
	closeDB := sync.OnceFunc(func() { r.db.Close() })
	t.Cleanup(closeDB)
	if r.reg, err = devices.NewRegistry(r.db, devices.RegistryOptions{}); err != nil {
		t.Fatal(err)
	}
	if r.twins, err = devices.NewTwins(r.db, devices.TwinsOptions{}); err != nil {
		t.Fatal(err)
	}
	r.secrets = map[string]string{}
	if _, err := r.reg.Station("ys-a"); err != nil {
		if err := r.reg.AddStations(append([]devices.Station(nil), alertStations...)); err != nil {
			t.Fatal(err)
		}
		list := append(append([]devices.Device(nil), alertDevices...), ro.extra...)
		if r.secrets, err = r.reg.Provision(list); err != nil {
			t.Fatal(err)
		}
	}
	r.broker, err = broker.New(broker.Options{TCPAddr: "127.0.0.1:0",
		Credentials: registryLogins{r.reg}, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.broker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.broker.Close() })
	r.bus = r.broker.Bus()
	r.cmds = &busCommands{bus: r.bus, reg: r.reg, now: now}

	if r.in, err = NewIngest(IngestOptions{Bus: r.bus, Registry: r.reg, Twins: r.twins,
		Now: now, Registerer: r.prom}); err != nil {
		t.Fatal(err)
	}
	if r.pres, err = NewPresence(PresenceOptions{Twins: r.twins, Registry: r.reg, Now: now,
		Registerer: r.prom}); err != nil {
		t.Fatal(err)
	}
	ao := AlertOptions{DB: r.db, Registry: r.reg, Twins: r.twins, Bus: r.bus, Notifier: r.notes,
		Commands: r.cmds, AllowLists: r.stale, Location: shanghai, Now: now, Registerer: r.prom,
		// Tests run the timers themselves with Sweep.
		Every: time.Hour}
	if ro.alerts != nil {
		ro.alerts(&ao)
	}
	if r.alerts, err = NewAlerts(ao); err != nil {
		t.Fatal(err)
	}
	r.in.Observe(r.alerts.Observe)
	r.in.Observe(func(obs Observation) {
		// Wills are published by the broker, not sent by the rig's clients.
		if obs.Status == nil || obs.Status.Online {
			r.seen.Add(1)
		}
	})
	r.pres.OnSilent(r.alerts.DeviceSilent)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := r.in.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := r.alerts.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	r.stop = sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
	t.Cleanup(r.stop)
	select {
	case <-r.in.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("ingest not ready")
	}
	return r
}

// shutdown stops the rig's loops, broker and data file, for a restart.
func (r *alertRig) shutdown(t testing.TB) {
	t.Helper()
	r.broker.Close()
	r.stop()
	if err := r.twins.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := r.db.Close(); err != nil {
		t.Fatal(err)
	}
}

// restart shuts the rig down, moves its clock on by away, and starts a new
// rig on the same data file and clock, whose devices log in with the same
// secrets.
func (r *alertRig) restart(t testing.TB, away time.Duration) *alertRig {
	t.Helper()
	r.shutdown(t)
	r.clock.Add(away)
	again := newAlertRig(t, alertRigOptions{dir: filepath.Dir(r.dbPath), clock: r.clock})
	again.secrets = r.secrets
	return again
}

// noticeLog is a Notifier that records every notice.
type noticeLog struct {
	mu   sync.Mutex
	list []Notice
}

func (l *noticeLog) Notify(n Notice) {
	l.mu.Lock()
	l.list = append(l.list, n)
	l.mu.Unlock()
}

// of returns the notices of a type ("" any) about alerts of a rule.
func (l *noticeLog) of(typ, rule string) []Notice {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Notice
	for _, n := range l.list {
		a := n.Data.(Alert)
		if (typ == "" || n.Type == typ) && (rule == "" || a.Rule == rule) {
			out = append(out, n)
		}
	}
	return out
}

func (l *noticeLog) all() []Notice {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Notice(nil), l.list...)
}

// staleList stands in for the allow-lists' view of stale terminals; the
// allow-lists' own tests cover how staleness is judged.
type staleList struct {
	mu   sync.Mutex
	list []TerminalStatus
}

func (s *staleList) StaleTerminals() []TerminalStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]TerminalStatus(nil), s.list...)
}

func (s *staleList) set(list ...TerminalStatus) {
	s.mu.Lock()
	s.list = list
	s.mu.Unlock()
}

// busCommands is a small CommandIssuer: it publishes the command on the
// device's cmd topic and remembers it.
type busCommands struct {
	bus *broker.Bus
	reg *devices.Registry
	now func() time.Time

	mu   sync.Mutex
	n    int
	sent []CommandRequest
}

func (c *busCommands) IssueCommand(req CommandRequest) (string, error) {
	d, err := c.reg.Device(req.Device)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.n++
	id := fmt.Sprintf("c%d", c.n)
	c.sent = append(c.sent, req)
	c.mu.Unlock()
	cmd := schemas.Command{ID: id, Name: req.Name, Args: req.Args,
		ExpiresAt: c.now().Add(time.Minute).UnixMilli()}
	if err := cmd.Validate(); err != nil {
		return "", err
	}
	buf, err := json.Marshal(cmd)
	if err != nil {
		return "", err
	}
	return id, c.bus.Publish(schemas.DeviceTopic(d.Station, d.ID, schemas.ChannelCmd), 1, false, buf)
}

func (c *busCommands) requests() []CommandRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]CommandRequest(nil), c.sent...)
}

// device is a paho client logged in as a device.
type device struct {
	r       *alertRig
	c       mqtt.Client
	station string
	id      string
	cmds    chan mqtt.Message

	mu   sync.Mutex
	conn net.Conn // to cut the connection without a DISCONNECT
}

// cut drops the device's TCP connection without a DISCONNECT: the broker
// publishes its will.
func (d *device) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		d.conn.Close()
	}
}

func (r *alertRig) connect(t testing.TB, id string) *device {
	t.Helper()
	d, err := r.reg.Device(id)
	if err != nil {
		t.Fatal(err)
	}
	dv := &device{r: r, station: d.Station, id: id, cmds: make(chan mqtt.Message, 64)}
	will := fmt.Sprintf(`{"online":false,"kind":%q,"conn":"p1"}`, d.Kind)
	opts := mqtt.NewClientOptions().AddBroker("tcp://"+r.broker.TCPAddr()).SetClientID(id).
		SetUsername(id).SetPassword(r.secrets[id]).SetAutoReconnect(false).
		SetCleanSession(true).SetConnectTimeout(5*time.Second).
		SetBinaryWill(schemas.DeviceTopic(d.Station, id, schemas.ChannelStatus), []byte(will), 1, true)
	opts.SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
		c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		dv.mu.Lock()
		dv.conn = c
		dv.mu.Unlock()
		return c, err
	})
	dv.c = mqtt.NewClient(opts)
	if tok := dv.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { dv.c.Disconnect(20) })
	dv.send(t, schemas.ChannelStatus, fmt.Sprintf(`{"online":true,"kind":%q,"conn":"p1"}`, d.Kind))
	topic := schemas.DeviceTopic(d.Station, id, schemas.ChannelCmd)
	tok := dv.c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { dv.cmds <- m })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	return dv
}

// send publishes a message, QoS 1, and waits for the broker to take it.
func (d *device) send(t testing.TB, ch schemas.Channel, payload string) {
	t.Helper()
	d.r.sent.Add(1)
	tok := d.c.Publish(schemas.DeviceTopic(d.station, d.id, ch), 1, ch == schemas.ChannelStatus,
		payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s of %s: %v", ch, d.id, tok.Error())
	}
}

// mosquittoPub publishes one message as a device with the Mosquitto client.
func (r *alertRig) mosquittoPub(t testing.TB, id string, ch schemas.Channel, payload string) {
	t.Helper()
	d, err := r.reg.Device(id)
	if err != nil {
		t.Fatal(err)
	}
	r.sent.Add(1)
	host, port, _ := net.SplitHostPort(r.broker.TCPAddr())
	out, err := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-i", id, "-u", id,
		"-P", r.secrets[id], "-q", "1", "-t", schemas.DeviceTopic(d.Station, id, ch),
		"-m", payload).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}

// alert waits for the open alert of a device (or station, device "") and
// rule and returns it.
func (r *alertRig) alert(t testing.TB, station, dev, rule string) Alert {
	t.Helper()
	var a Alert
	ok := poll(func() bool {
		r.alerts.mu.Lock()
		defer r.alerts.mu.Unlock()
		for _, x := range r.alerts.alerts {
			if x.Station == station && x.Device == dev && x.Rule == rule && x.Open() {
				a = *x
				return true
			}
		}
		return false
	}) && poll(r.flushed)
	if !ok {
		t.Fatalf("no open %s alert for %s/%s; alerts: %s", rule, station, dev, r.dump())
	}
	return a
}

// resolved waits for alert id to be resolved and told.
func (r *alertRig) resolved(t testing.TB, id string) Alert {
	t.Helper()
	var a Alert
	if !poll(func() bool {
		a, _ = r.alerts.Get(id)
		return a.State == AlertResolved && r.flushed()
	}) {
		t.Fatalf("alert %s not resolved: %+v", id, a)
	}
	return a
}

// flushed reports whether ingest handled everything sent and every
// notice is told.
func (r *alertRig) flushed() bool {
	if r.seen.Load() < r.sent.Load() || r.in.queued.Load() != 0 {
		return false
	}
	// Holding flushMu, no flush is halfway through telling.
	r.alerts.flushMu.Lock()
	defer r.alerts.flushMu.Unlock()
	r.alerts.mu.Lock()
	defer r.alerts.mu.Unlock()
	return len(r.alerts.pending) == 0 && r.alerts.telling.Load() == 0
}

// settle waits until ingest has handled everything sent and the alerts
// are stored and told.
func (r *alertRig) settle(t testing.TB) {
	t.Helper()
	if !poll(r.flushed) {
		t.Fatal("alerts did not settle")
	}
	if err := r.alerts.Flush(); err != nil {
		t.Fatal(err)
	}
}

// none checks that no alert of a device and rule is open.
func (r *alertRig) none(t testing.TB, station, dev, rule string) {
	t.Helper()
	r.settle(t)
	for _, a := range r.alerts.List(AlertFilter{Station: station, Device: dev, Rule: rule}) {
		if a.Open() {
			t.Fatalf("unexpected open alert %+v", a)
		}
	}
}

func (r *alertRig) dump() string {
	var b strings.Builder
	for _, a := range r.alerts.List(AlertFilter{}) {
		fmt.Fprintf(&b, "\n  %s %s/%s %s %s %s count=%d", a.ID, a.Station, a.Device, a.Rule,
			a.State, a.Severity, a.Count)
	}
	return b.String()
}

// poll waits up to 5 s for cond.
func poll(cond func() bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// Telemetry payloads.
func acTelem(power bool, mode string, setpoint, room float64, fault string) string {
	return fmt.Sprintf(`{"power":%v,"mode":%q,"setpoint_c":%g,"room_c":%g,"fault":%q}`,
		power, mode, setpoint, room, fault)
}

func lockTelem(door, bolt string, battery float64, tamper bool) string {
	return fmt.Sprintf(`{"door":%q,"bolt":%q,"mode":"normal","battery_pct":%g,"tamper":%v}`,
		door, bolt, battery, tamper)
}

func chargerTelem(smoke, mains bool, slots ...string) string {
	return fmt.Sprintf(`{"slots":[%s],"smoke":%v,"mains":%v}`, strings.Join(slots, ","), smoke, mains)
}

func slot(n int, state string, temp float64) string {
	return fmt.Sprintf(`{"slot":%d,"state":%q,"temp_c":%g}`, n, state, temp)
}

func aedTelem(ready bool, selfTest string, battery float64, pads string, open bool,
	cabinet float64) string {
	return fmt.Sprintf(`{"ready":%v,"self_test":%q,"battery_pct":%g,"pads_expire":%q,`+
		`"cabinet_open":%v,"cabinet_c":%g}`, ready, selfTest, battery, pads, open, cabinet)
}

func eventJSON(typ, code string) string {
	if code == "" {
		return fmt.Sprintf(`{"type":%q}`, typ)
	}
	return fmt.Sprintf(`{"type":%q,"code":%q}`, typ, code)
}
