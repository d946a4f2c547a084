package controller

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/broker"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// fakeClock is a settable clock for the parts whose behaviour depends on
// time (opening hours, throttling, staleness, usage hours).
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// shanghai is the time zone of the test stations.
var shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return loc
}()

// accessRig is the access path on a real broker (with a TCP listener for
// real MQTT clients) and a real bbolt file: ingest, credentials, rules,
// access decisions, allow-lists and usage, on a fake clock.
type accessRig struct {
	db      *bolt.DB
	reg     *devices.Registry
	twins   *devices.Twins
	creds   *Credentials
	rules   *AccessRules
	access  *Access
	lists   *AllowLists // not running: tests call refresh or Run
	usage   *Usage      // not running: Report flushes
	broker  *broker.Broker
	bus     *broker.Bus
	in      *Ingest
	prom    *prometheus.Registry
	clock   *fakeClock
	secrets map[string]string // device secrets, by device id
}

// rigOptions adjusts an accessRig before it starts.
type rigOptions struct {
	access func(*AccessOptions)
	// locks adds this many extra lock terminals, bench-000 to bench-NNN,
	// at station ys-a.
	locks int
}

// The rig's stations: two organisations' and one of none.
var rigStations = []devices.Station{
	{ID: "ys-a", Name: "A", Lat: 32.63, Lon: 116.27, Org: "org-a", Hours: "24h"},
	{ID: "ys-b", Name: "B", Lat: 32.64, Lon: 116.28, Org: "org-b", Hours: "06:00-22:00"},
	{ID: "ys-n", Name: "N", Lat: 32.62, Lon: 116.26, Hours: "22:00-06:00"},
}

func newAccessRig(t testing.TB, ro rigOptions) *accessRig {
	t.Helper()
	r := &accessRig{prom: prometheus.NewRegistry(), secrets: map[string]string{},
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
	var list []devices.Device
	for _, st := range rigStations {
		list = append(list,
			devices.Device{ID: st.ID + "-lock", Station: st.ID, Kind: schemas.KindLock},
			devices.Device{ID: st.ID + "-ac", Station: st.ID, Kind: schemas.KindAC})
	}
	for i := range ro.locks {
		list = append(list, devices.Device{ID: benchLock(i), Station: "ys-a", Kind: schemas.KindLock})
	}
	if r.secrets, err = r.reg.Provision(list); err != nil {
		t.Fatal(err)
	}

	if r.creds, err = NewCredentials(r.db, r.clock.Now); err != nil {
		t.Fatal(err)
	}
	if r.rules, err = NewAccessRules(r.db, r.clock.Now); err != nil {
		t.Fatal(err)
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

	if r.usage, err = NewUsage(UsageOptions{DB: r.db, Location: shanghai, Now: r.clock.Now,
		Registerer: r.prom}); err != nil {
		t.Fatal(err)
	}
	ao := AccessOptions{Bus: r.bus, Registry: r.reg, Twins: r.twins, Credentials: r.creds,
		Rules: r.rules, Visits: r.usage, Location: shanghai, Now: r.clock.Now, Registerer: r.prom}
	if ro.access != nil {
		ro.access(&ao)
	}
	if r.access, err = NewAccess(ao); err != nil {
		t.Fatal(err)
	}
	if r.in, err = NewIngest(IngestOptions{Bus: r.bus, Registry: r.reg, Twins: r.twins,
		Now: r.clock.Now, Registerer: r.prom}); err != nil {
		t.Fatal(err)
	}
	r.in.Observe(r.access.Observe)
	if r.lists, err = NewAllowLists(AllowListOptions{DB: r.db, Bus: r.bus, Registry: r.reg,
		Credentials: r.creds, Rules: r.rules, Now: r.clock.Now, Registerer: r.prom,
		Every: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	r.in.Observe(r.lists.Observe)
	r.in.Observe(r.usage.Observe)

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
	return r
}

func benchLock(i int) string {
	return "bench-" + string(rune('0'+i/100%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
}

// issue issues a credential or fails the test.
func (r *accessRig) issue(t testing.TB, org string, methods ...string) (string, Credential) {
	t.Helper()
	tok, cr, err := r.creds.Issue(org, "worker", methods)
	if err != nil {
		t.Fatal(err)
	}
	return tok, cr
}

// device returns a registered device of the rig.
func (r *accessRig) device(t testing.TB, id string) devices.Device {
	t.Helper()
	d, err := r.reg.Device(id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// registryLogins lets the rig's broker check device secrets.
type registryLogins struct{ r *devices.Registry }

func (c registryLogins) Authenticate(user string, pass []byte) (broker.Identity, error) {
	d, err := c.r.Authenticate(user, pass)
	switch {
	case errors.Is(err, devices.ErrNotFound):
		return broker.Identity{}, broker.ErrUnknownDevice
	case errors.Is(err, devices.ErrBadSecret):
		return broker.Identity{}, broker.ErrBadSecret
	case err != nil:
		return broker.Identity{}, err
	}
	return broker.Identity{Station: d.Station, Device: d.ID}, nil
}
