package probe

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/waystation/waystation/broker"
	"github.com/waystation/waystation/schemas"
	"github.com/waystation/waystation/simulators"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	ctrlUser   = "waystation.controller"
	ctrlSecret = "controller-secret-for-tests"
)

// creds is a registry of device secrets for the broker.
type creds struct {
	mu      sync.Mutex
	devices map[string]broker.Identity
	secrets map[string]string
}

func (c *creds) Authenticate(user string, pass []byte) (broker.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.devices[user]
	switch {
	case !ok:
		return broker.Identity{}, broker.ErrUnknownDevice
	case c.secrets[user] != string(pass):
		return broker.Identity{}, broker.ErrBadSecret
	}
	return id, nil
}

func (c *creds) add(station, device, secret string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.devices[device] = broker.Identity{Station: station, Device: device}
	c.secrets[device] = secret
}

// startBroker runs the platform's broker, with its device ACL and a
// controller login, on a free loopback port.
func startBroker(t *testing.T) (string, *creds) {
	t.Helper()
	c := &creds{devices: map[string]broker.Identity{}, secrets: map[string]string{}}
	b, err := broker.New(broker.Options{TCPAddr: "127.0.0.1:0", Credentials: c,
		ControllerUser: ctrlUser, ControllerSecret: ctrlSecret})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return "tcp://" + b.TCPAddr(), c
}

// probe runs the probe on a device, allowed to cut its power for half a
// second. It may run on any goroutine; the caller checks the error.
func probe(ctx context.Context, url string, d *simulators.Device, watch time.Duration) (*Report,
	error) {
	return Run(ctx, Options{Broker: url, Username: ctrlUser, Password: ctrlSecret,
		Device: d.ID(), Duration: watch, AnswerWithin: 2 * time.Second, Speed: speed,
		WillWithin: 2 * time.Second, BackWithin: 5 * time.Second,
		PowerCycle: func(context.Context) error { return d.PowerCut(500 * time.Millisecond) }})
}

// probeAll probes the devices at once (the probes mostly wait) and returns
// their reports in order, logging each.
func probeAll(t *testing.T, url string, devs []*simulators.Device, watch time.Duration) []*Report {
	t.Helper()
	reps := make([]*Report, len(devs))
	errs := make([]error, len(devs))
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Go(func() { reps[i], errs[i] = probe(t.Context(), url, d, watch) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("probe of %s: %v", devs[i].ID(), err)
		}
		var b strings.Builder
		_ = reps[i].WriteText(&b)
		t.Logf("report:\n%s", b.String())
	}
	return reps
}

// TestProbePassesOurSimulators: every kind of simulated device passes
// every check.
func TestProbePassesOurSimulators(t *testing.T) {
	url, c := startBroker(t)
	kinds := []schemas.Kind{schemas.KindAC, schemas.KindLock, schemas.KindCharger, schemas.KindAED}
	var devs []*simulators.Device
	for i, k := range kinds {
		devs = append(devs, deviceAt(t, url, c, k, simulators.Break{}, 10+i))
	}
	for i, rep := range probeAll(t, url, devs, 3*time.Second) {
		if rep.Failed() || rep.Station != devs[i].Spec().Station || rep.Kind != kinds[i] {
			t.Errorf("%s: report %+v", devs[i].ID(), rep)
		}
		for _, name := range []string{CheckContract, CheckStatus, CheckWill, CheckInterval,
			CheckSequence, CheckCommand, CheckRepeat, CheckExpired} {
			if ch, ok := rep.Check(name); !ok || ch.Result != Pass {
				t.Errorf("%s: %s: %+v, want a pass", devs[i].ID(), name, ch)
			}
		}
	}
}

// TestProbeNamesEachBreak: a device broken in one way fails the check
// that covers it, with evidence, and the report says FAIL.
func TestProbeNamesEachBreak(t *testing.T) {
	url, c := startBroker(t)
	cases := []struct {
		name  string
		kind  schemas.Kind
		brk   simulators.Break
		check string
		says  string
	}{
		{"no will", schemas.KindAC, simulators.Break{NoWill: true}, CheckWill, "no offline status"},
		{"status not retained", schemas.KindAED, simulators.Break{StatusNotKept: true}, CheckStatus,
			"retained"},
		{"bad payload", schemas.KindCharger, simulators.Break{BadTelemetry: true}, CheckContract,
			"seq"},
		{"wrong interval", schemas.KindLock, simulators.Break{WrongInterval: true}, CheckInterval,
			"apart"},
		{"repeats commands", schemas.KindAC, simulators.Break{RepeatCommands: true}, CheckRepeat,
			"ran again"},
		{"runs expired commands", schemas.KindAC, simulators.Break{ExpiredCommands: true},
			CheckExpired, "expired"},
	}
	var devs []*simulators.Device
	for i, tc := range cases {
		devs = append(devs, deviceAt(t, url, c, tc.kind, tc.brk, i))
	}
	for i, rep := range probeAll(t, url, devs, 3*time.Second) {
		tc := cases[i]
		if !rep.Failed() {
			t.Errorf("%s: a device that breaks the contract passed", tc.name)
			continue
		}
		ch, _ := rep.Check(tc.check)
		text := ch.Summary + " " + strings.Join(ch.Evidence, " ")
		if ch.Result != Fail || !strings.Contains(text, tc.says) {
			t.Errorf("%s: %s: %+v, want a failure naming %q", tc.name, tc.check, ch, tc.says)
		}
		if len(ch.Evidence) == 0 && !strings.Contains(ch.Summary, tc.says) {
			t.Errorf("%s: %s failed without evidence", tc.name, tc.check)
		}
		var b strings.Builder
		_ = rep.WriteText(&b)
		if !strings.Contains(b.String(), "FAIL  "+tc.check) || !strings.Contains(b.String(), "FAIL:") {
			t.Errorf("%s: the text report does not name the failed check:\n%s", tc.name, b.String())
		}
	}
}

// speed is the simulated devices' clock: twice the wall clock, so each
// one-second interval takes half a second and the probe is told so.
const speed = 2

// deviceAt runs a device with an id of its own, so parallel tests do not
// share one.
func deviceAt(t *testing.T, url string, c *creds, kind schemas.Kind, brk simulators.Break,
	n int) *simulators.Device {
	t.Helper()
	station := "ys-" + string(rune('a'+n))
	id := station + "-" + string(kind)
	c.add(station, id, "s-"+id)
	d := simulators.NewDevice(simulators.DeviceSpec{Station: station, Device: id, Kind: kind,
		Secret: "s-" + id, Interval: time.Second},
		simulators.DeviceOptions{Broker: url, Seed: int64(n), Break: brk,
			Clock: simulators.NewClock(time.Time{}, speed)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("device: %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for !d.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("device did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d
}

func TestProbeRefusals(t *testing.T) {
	url, _ := startBroker(t)
	_, err := Run(t.Context(), Options{Broker: url, Username: ctrlUser, Password: "wrong",
		Device: "ys-001-ac", Duration: time.Second})
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("a wrong controller secret: %v", err)
	}
	_, err = Run(t.Context(), Options{Broker: url, Username: ctrlUser, Password: ctrlSecret,
		Device: "ys-404-ac", Duration: 500 * time.Millisecond})
	if !errors.Is(err, ErrNotSeen) {
		t.Errorf("a device never seen: %v, want ErrNotSeen", err)
	}
	if _, err := Run(t.Context(), Options{Broker: url, Device: "Bad Id"}); err == nil {
		t.Error("a bad device id was accepted")
	}
}

// TestProbeWithoutPowerCycleSkipsTheWill: the will is not checked unless
// the probe may cut the power, and the report says so.
func TestProbeWithoutPowerCycleSkipsTheWill(t *testing.T) {
	url, c := startBroker(t)
	d := deviceAt(t, url, c, schemas.KindAED, simulators.Break{}, 20)
	var steps []string
	rep, err := Run(t.Context(), Options{Broker: url, Username: ctrlUser, Password: ctrlSecret,
		Device: d.ID(), Duration: 2 * time.Second, AnswerWithin: 2 * time.Second, Speed: speed,
		Progress: func(s string) { steps = append(steps, s) }})
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := rep.Check(CheckWill)
	if ch.Result != Skip || !strings.Contains(ch.Summary, "--power-cycle") {
		t.Errorf("will check %+v, want a skip that says how to run it", ch)
	}
	if rep.Failed() || len(steps) < 3 {
		t.Errorf("report failed %v, steps %v", rep.Failed(), steps)
	}
}
