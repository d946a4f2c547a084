package simulators

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/waystation/waystation/schemas"
)

var allKinds = []schemas.Kind{
	schemas.KindLock, schemas.KindAC, schemas.KindCharger, schemas.KindAED,
}

// kindFleet returns one device of every kind at station st-1.
func kindFleet() []DeviceSpec {
	var specs []DeviceSpec
	for _, k := range allKinds {
		specs = append(specs, spec("st-1", "st-1-"+string(k), k))
	}
	return specs
}

func TestFleetAnnouncesReportsAndLeavesCleanly(t *testing.T) {
	specs := kindFleet()
	creds := &credHook{secrets: map[string]string{}}
	for _, s := range specs {
		creds.secrets[s.Device] = s.Secret
	}
	b := startBrokerWith(t, creds, creds)
	f, err := NewFleet(FleetOptions{Broker: b.url, Devices: specs, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	live := watchLive(t, b)
	r := runFleet(t, f)

	eventually(t, 5*time.Second, "every device connected", func() bool {
		return f.Connected() == len(specs)
	})
	for _, s := range specs {
		if f.Device(s.Device).Conn() == "" {
			t.Errorf("%s: no connection id while connected", s.Device)
		}
	}
	eventually(t, 5*time.Second, "three telemetry messages from each device", func() bool {
		for _, s := range specs {
			if len(live.of(s.Device, schemas.ChannelTelemetry)) < 3 {
				return false
			}
		}
		return true
	})

	// A watcher that subscribes now gets each device's online status as
	// the retained message.
	late := watch(t, b)
	eventually(t, 5*time.Second, "retained statuses", func() bool {
		return len(late.of("", schemas.ChannelStatus)) >= len(specs)
	})
	for _, s := range specs {
		var retained []schemas.Status
		for _, m := range late.of(s.Device, schemas.ChannelStatus) {
			if m.retained {
				st, err := schemas.DecodeStatus(m.payload)
				if err != nil {
					t.Fatalf("%s: %v", s.Device, err)
				}
				retained = append(retained, st)
			}
		}
		if len(retained) != 1 {
			t.Fatalf("%s: %d retained statuses, want 1", s.Device, len(retained))
		}
		st := retained[0]
		want := schemas.Status{Meta: st.Meta, Online: true, Kind: s.Kind, Firmware: "sim-1.0.0",
			Model: "sim-" + string(s.Kind), IntervalS: 1, Conn: f.Device(s.Device).Conn()}
		if st != want {
			t.Errorf("%s: online status %+v, want %+v", s.Device, st, want)
		}
		if st.TS == 0 || st.Seq == 0 {
			t.Errorf("%s: online status without ts or seq: %+v", s.Device, st)
		}
	}

	// Telemetry decodes, is of the device's kind, and counts up.
	for _, s := range specs {
		tms := live.telemetry(s.Device, s.Kind)
		var last uint64
		for _, tm := range tms {
			if tm.State() == nil {
				t.Errorf("%s: telemetry without state", s.Device)
			}
			if tm.Seq <= last {
				t.Errorf("%s: seq %d after %d", s.Device, tm.Seq, last)
			}
			if tm.TS == 0 {
				t.Errorf("%s: telemetry without ts", s.Device)
			}
			last = tm.Seq
		}
		evs := live.events(s.Device)
		if len(evs) == 0 || evs[0].Type != schemas.EventBoot {
			t.Errorf("%s: events %+v, want a boot event first", s.Device, evs)
		}
	}

	conns := map[string]string{}
	for _, s := range specs {
		conns[s.Device] = f.Device(s.Device).Conn()
	}
	r.stop(t)
	if n := f.Connected(); n != 0 {
		t.Errorf("Connected() = %d after Run returned", n)
	}

	// A clean stop leaves the offline status of the same connection,
	// retained. Mochi scans its retained messages for a new subscriber
	// without the lock that guards writes (mochi-mqtt/server#200), so a
	// retained write still settling as the devices leave can make one scan
	// miss or repeat a message: a fresh subscriber tries again.
	var problems []string
	for range 5 {
		problems = nil
		after := watch(t, b)
		eventually(t, 5*time.Second, "retained offline statuses", func() bool {
			return len(after.of("", schemas.ChannelStatus)) >= len(specs)
		})
		for _, s := range specs {
			sts := after.statuses(s.Device)
			if len(sts) != 1 || sts[0].Online || sts[0].Conn != conns[s.Device] ||
				sts[0].Kind != s.Kind {
				problems = append(problems, fmt.Sprintf("%s: after stop %+v, want offline with "+
					"conn %s", s.Device, sts, conns[s.Device]))
			}
		}
		after.client.Disconnect(50)
		if len(problems) == 0 {
			break
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func TestWrongSecretIsRefusedAndRunStillStops(t *testing.T) {
	s := spec("st-1", "st-1-lock", schemas.KindLock)
	creds := &credHook{secrets: map[string]string{s.Device: "the-real-secret"}}
	b := startBrokerWith(t, creds, creds)
	d := NewDevice(s, DeviceOptions{Broker: b.url})
	r := runDevice(t, d)

	time.Sleep(700 * time.Millisecond) // a first attempt and a retry
	if d.Connected() {
		t.Fatal("connected with a wrong secret")
	}
	start := time.Now()
	r.stop(t)
	if took := time.Since(start); took > time.Second {
		t.Errorf("Run took %v to return while backing off", took)
	}
}

func TestCommandCarriedOutOnceAndAnsweredAgain(t *testing.T) {
	b := startBroker(t)
	w := watchLive(t, b)
	s := spec("st-1", "st-1-ac", schemas.KindAC)
	s.Interval = time.Minute // only commands make it publish telemetry
	d := NewDevice(s, DeviceOptions{Broker: b.url, BootTime: 50 * time.Millisecond})
	runDevice(t, d)
	eventually(t, 5*time.Second, "connected", d.Connected)
	first := d.Conn()

	// ac.set: the state shows the change in the telemetry that follows the result.
	set := schemas.Command{ID: "set-1", Name: schemas.CmdACSet, ExpiresAt: farFuture(),
		Args: map[string]any{"power": true, "mode": "cool", "setpoint_c": 24.5}}
	w.send("st-1", s.Device, set)
	eventually(t, 5*time.Second, "ac.set result", func() bool {
		return len(w.results(s.Device, "set-1")) == 1
	})
	if r := w.results(s.Device, "set-1")[0]; !r.OK || r.Error != "" {
		t.Fatalf("ac.set answered %+v", r)
	}
	eventually(t, 5*time.Second, "telemetry after ac.set", func() bool {
		tms := w.telemetry(s.Device, s.Kind)
		if len(tms) < 2 {
			return false
		}
		last := tms[len(tms)-1].AC
		return last.Power && last.Mode == "cool" && last.SetpointC == 24.5
	})

	// device.reboot twice with one id: one reboot, two answers.
	reboot := schemas.Command{ID: "reboot-1", Name: schemas.CmdReboot, ExpiresAt: farFuture()}
	w.send("st-1", s.Device, reboot)
	eventually(t, 5*time.Second, "reconnected after reboot", func() bool {
		return d.Connected() && d.Conn() != first
	})
	second := d.Conn()
	w.send("st-1", s.Device, reboot)
	eventually(t, 5*time.Second, "second answer", func() bool {
		return len(w.results(s.Device, "reboot-1")) == 2
	})
	time.Sleep(300 * time.Millisecond) // six boot times: a second reboot would show
	for _, r := range w.results(s.Device, "reboot-1") {
		if !r.OK {
			t.Errorf("reboot answered %+v", r)
		}
	}
	if d.Conn() != second {
		t.Errorf("rebooted again on a repeated id: conn %s, want %s", d.Conn(), second)
	}
	var online []string
	for _, st := range w.statuses(s.Device) {
		if st.Online {
			online = append(online, st.Conn)
		}
	}
	if len(online) != 2 || online[0] != first || online[1] != second {
		t.Errorf("online statuses for conns %v, want [%s %s]", online, first, second)
	}
	boots := 0
	for _, e := range w.events(s.Device) {
		if e.Type == schemas.EventBoot {
			boots++
		}
	}
	if boots != 2 {
		t.Errorf("%d boot events, want 2 (start and one reboot)", boots)
	}
}

func TestExpiredCommandIsDroppedWithoutAnswer(t *testing.T) {
	b := startBroker(t)
	w := watchLive(t, b)
	s := spec("st-1", "st-1-ac", schemas.KindAC)
	s.Interval = time.Minute
	d := NewDevice(s, DeviceOptions{Broker: b.url, Now: frozen(july)})
	runDevice(t, d)
	eventually(t, 5*time.Second, "first telemetry", func() bool {
		return len(w.of(s.Device, schemas.ChannelTelemetry)) == 1
	})
	before := w.telemetry(s.Device, s.Kind)[0].AC.SetpointC

	w.send("st-1", s.Device, schemas.Command{ID: "late-1", Name: schemas.CmdACSet,
		ExpiresAt: july.UnixMilli() - 1, Args: map[string]any{"setpoint_c": 31.0}})
	w.send("st-1", s.Device, schemas.Command{ID: "marker-1", Name: schemas.CmdACSet,
		ExpiresAt: july.UnixMilli() + 1000, Args: map[string]any{"fan": "high"}})
	eventually(t, 5*time.Second, "marker result and telemetry", func() bool {
		return len(w.results(s.Device, "marker-1")) == 1 &&
			len(w.of(s.Device, schemas.ChannelTelemetry)) == 2
	})
	if n := len(w.results(s.Device, "late-1")); n != 0 {
		t.Errorf("expired command answered %d times", n)
	}
	tms := w.telemetry(s.Device, s.Kind)
	if got := tms[1].AC.SetpointC; got != before || got == 31 {
		t.Errorf("setpoint %v after an expired command, want %v", got, before)
	}
	if st := d.Stats(); st.Expired != 1 || st.Executed != 1 || st.Repeated != 0 {
		t.Errorf("stats %+v, want one expired and one carried out", st)
	}
}

func TestRefusedCommandsAreAnswered(t *testing.T) {
	b := startBroker(t)
	w := watchLive(t, b)
	s := spec("st-1", "st-1-lock", schemas.KindLock)
	s.Interval = time.Minute
	d := NewDevice(s, DeviceOptions{Broker: b.url})
	runDevice(t, d)
	eventually(t, 5*time.Second, "connected", d.Connected)

	if err := d.Jam(); err != nil {
		t.Fatal(err)
	}
	cases := []schemas.Command{
		{ID: "wrong-kind", Name: schemas.CmdACSet, Args: map[string]any{"power": true}},
		{ID: "jammed", Name: schemas.CmdLockUnlock},
		{ID: "bad-mode", Name: schemas.CmdLockMode, Args: map[string]any{"mode": "party"}},
	}
	for _, c := range cases {
		c.ExpiresAt = farFuture()
		w.send("st-1", s.Device, c)
	}
	// A payload the decoder refuses is answered too, when its id is usable.
	tok := w.client.Publish(schemas.DeviceTopic("st-1", s.Device, schemas.ChannelCmd), 1, false,
		[]byte(`{"id":"not-json-args","name":"lock.mode","args":[1],"expires_at":"soon"}`))
	tok.Wait()

	for _, id := range []string{"wrong-kind", "jammed", "bad-mode", "not-json-args"} {
		eventually(t, 5*time.Second, "answer to "+id, func() bool {
			return len(w.results(s.Device, id)) == 1
		})
		if r := w.results(s.Device, id)[0]; r.OK || r.Error == "" {
			t.Errorf("%s answered %+v, want a refusal with a reason", id, r)
		}
	}
}

func TestFaultsShowInEventsAndTelemetry(t *testing.T) {
	b := startBroker(t)
	w := watchLive(t, b)
	specs := kindFleet()
	for i := range specs {
		specs[i].Interval = time.Minute // only the fault makes them publish again
	}
	f, err := NewFleet(FleetOptions{Broker: b.url, Devices: specs, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	runFleet(t, f)
	eventually(t, 5*time.Second, "first telemetry of all", func() bool {
		return len(w.of("", schemas.ChannelTelemetry)) == len(specs)
	})

	cases := []struct {
		device string
		inject func(*Device) error
		event  func(schemas.Event) bool
		shows  func(schemas.Telemetry) bool
	}{
		{
			"st-1-ac", func(d *Device) error { return d.SetFault("E4") },
			func(e schemas.Event) bool { return e.Type == schemas.EventFaultRaised && e.Code == "E4" },
			func(tm schemas.Telemetry) bool { return tm.AC.Fault == "E4" },
		},
		{
			"st-1-lock", (*Device).Jam,
			func(e schemas.Event) bool {
				return e.Type == schemas.EventFaultRaised && e.Code == codeBoltJammed
			},
			func(tm schemas.Telemetry) bool { return tm.Lock.Bolt == "jammed" },
		},
		{
			"st-1-charger", func(d *Device) error { return d.Overheat(2) },
			func(e schemas.Event) bool { return e.Type == schemas.EventFaultRaised && e.Slot == 2 },
			func(tm schemas.Telemetry) bool {
				sl := tm.Charger.Slots[1]
				return sl.Slot == 2 && sl.State == "fault" && sl.TempC != nil && *sl.TempC >= 60
			},
		},
		{
			"st-1-aed", (*Device).OpenCabinet,
			func(e schemas.Event) bool { return e.Type == schemas.EventCabinetOpened },
			func(tm schemas.Telemetry) bool { return tm.AED.CabinetOpen && tm.AED.Ready },
		},
	}
	for _, c := range cases {
		d := f.Device(c.device)
		if err := c.inject(d); err != nil {
			t.Fatalf("%s: %v", c.device, err)
		}
		k := d.Spec().Kind
		eventually(t, 5*time.Second, c.device+" fault published", func() bool {
			tms := w.telemetry(c.device, k)
			evs := w.events(c.device)
			return len(tms) >= 2 && c.shows(tms[len(tms)-1]) && len(evs) > 0 && c.event(evs[len(evs)-1])
		})

		if err := d.Clear(); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, c.device+" cleared", func() bool {
			tms := w.telemetry(c.device, k)
			return !c.shows(tms[len(tms)-1])
		})
	}

	// A fault meant for another kind is refused.
	if err := f.Device("st-1-lock").Overheat(1); !errors.Is(err, ErrKind) {
		t.Errorf("Overheat on a lock: %v, want ErrKind", err)
	}
	if err := f.Device("st-1-ac").SetFault("bad code!"); !errors.Is(err, ErrArgs) {
		t.Errorf("SetFault with a bad code: %v, want ErrArgs", err)
	}
}

func TestPowerCutLeavesRetainedWill(t *testing.T) {
	b := startBroker(t)
	live := watchLive(t, b)
	s := spec("st-1", "st-1-aed", schemas.KindAED)
	d := NewDevice(s, DeviceOptions{Broker: b.url})
	runDevice(t, d)
	eventually(t, 5*time.Second, "connected", d.Connected)
	first := d.Conn()

	if err := d.PowerCut(time.Second); err != nil {
		t.Fatal(err)
	}
	// While it is dark, a new subscriber finds the will of that connection.
	eventually(t, 5*time.Second, "will published", func() bool {
		sts := live.statuses(s.Device)
		return len(sts) > 0 && !sts[len(sts)-1].Online
	})
	eventually(t, time.Second, "disconnected", func() bool { return !d.Connected() })
	dark := watch(t, b)
	eventually(t, 2*time.Second, "retained will", func() bool {
		return len(dark.of(s.Device, schemas.ChannelStatus)) == 1
	})
	m := dark.of(s.Device, schemas.ChannelStatus)[0]
	st := dark.statuses(s.Device)[0]
	if !m.retained || st.Online || st.Conn != first || st.Kind != schemas.KindAED || st.TS == 0 {
		t.Fatalf("retained status during the cut: %+v (retained %v), want the will of %s",
			st, m.retained, first)
	}

	// Power back: a new connection, online again, and a boot event. A cut
	// loses what the device had not sent, so the next one waits for it.
	boots := func() (n int) {
		for _, e := range live.events(s.Device) {
			if e.Type == schemas.EventBoot {
				n++
			}
		}
		return n
	}
	eventually(t, 5*time.Second, "back online and booted", func() bool {
		return d.Connected() && d.Conn() != first && boots() == 2
	})
	if err := d.PowerCut(0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "third boot", func() bool { return boots() == 3 })
}

func TestBrokerSideCutReconnectsWithNewConnection(t *testing.T) {
	b := startBroker(t)

	live := watchLive(t, b)
	s := spec("st-1", "st-1-charger", schemas.KindCharger)
	d := NewDevice(s, DeviceOptions{Broker: b.url})
	runDevice(t, d)
	eventually(t, 5*time.Second, "connected", d.Connected)
	first := d.Conn()

	cl, ok := b.srv.Clients.Get(s.Device)
	if !ok {
		t.Fatal("broker does not know the device by its id")
	}
	// Cut the broker's end of the connection, as a dying network would;
	// mochi's own Stop counts as a clean close and skips the will.
	_ = cl.Net.Conn.Close()

	eventually(t, 5*time.Second, "reconnected", func() bool {
		return d.Connected() && d.Conn() != first && len(live.statuses(s.Device)) == 3
	})
	var seen []string
	for _, st := range live.statuses(s.Device) {
		seen = append(seen, fmt.Sprintf("%v/%s", st.Online, st.Conn))
	}
	want := []string{"true/" + first, "false/" + first, "true/" + d.Conn()}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("statuses %v, want %v", seen, want)
	}
	if err := d.DropConnection(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "reconnected after a drop", func() bool {
		sts := live.statuses(s.Device)
		return len(sts) == 5 && sts[4].Online && d.Connected()
	})
}

func TestFiftyDevicesConnectQuickly(t *testing.T) {
	b := startBroker(t)
	var specs []DeviceSpec
	for i := range 50 {
		st := fmt.Sprintf("st-%02d", i/3)
		k := allKinds[i%len(allKinds)]
		specs = append(specs, spec(st, fmt.Sprintf("%s-d%d", st, i), k))
	}
	f, err := NewFleet(FleetOptions{Broker: b.url, Devices: specs, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	w := watchLive(t, b)
	start := time.Now()
	r := runFleet(t, f)
	eventually(t, 5*time.Second, "fifty connected", func() bool { return f.Connected() == 50 })
	took := time.Since(start)
	t.Logf("50 devices connected in %v", took.Round(time.Millisecond))

	eventually(t, 5*time.Second, "telemetry from all", func() bool {
		for _, s := range specs {
			if len(w.of(s.Device, schemas.ChannelTelemetry)) == 0 {
				return false
			}
		}
		return true
	})
	for _, s := range specs {
		w.telemetry(s.Device, s.Kind) // fails the test on an invalid payload
	}

	start = time.Now()
	r.stop(t)
	t.Logf("50 devices stopped in %v", time.Since(start).Round(time.Millisecond))
	if f.Connected() != 0 {
		t.Errorf("Connected() = %d after stop", f.Connected())
	}
}

func TestSameSeedSameFirstTelemetry(t *testing.T) {
	b := startBroker(t)
	first := func(seed int64) map[string][]byte {
		w := watch(t, b)
		specs := kindFleet()
		f, err := NewFleet(FleetOptions{Broker: b.url, Devices: specs, Seed: seed, Now: frozen(july)})
		if err != nil {
			t.Fatal(err)
		}
		r := runFleet(t, f)
		eventually(t, 5*time.Second, "first telemetry", func() bool {
			for _, s := range specs {
				if len(w.of(s.Device, schemas.ChannelTelemetry)) == 0 {
					return false
				}
			}
			return true
		})
		r.stop(t)
		out := map[string][]byte{}
		for _, s := range specs {
			out[s.Device] = w.of(s.Device, schemas.ChannelTelemetry)[0].payload
			w.telemetry(s.Device, s.Kind)
		}
		return out
	}

	a, again, other := first(7), first(7), first(8)
	for id, p := range a {
		if !bytes.Equal(p, again[id]) {
			t.Errorf("%s: seed 7 gave\n%s\nthen\n%s", id, p, again[id])
		}
		if bytes.Equal(p, other[id]) {
			t.Errorf("%s: seeds 7 and 8 gave the same telemetry %s", id, p)
		}
	}
}

func TestBadSpecsAreRefused(t *testing.T) {
	good := spec("st-1", "st-1-ac", schemas.KindAC)
	cases := []struct {
		name   string
		broker string
		specs  []DeviceSpec
		want   error
	}{
		{"station id", "", []DeviceSpec{{Station: "St 1", Device: "d1", Kind: schemas.KindAC}}, ErrSpec},
		{"reserved station", "",
			[]DeviceSpec{{Station: "alerts", Device: "d1", Kind: schemas.KindAC}}, ErrSpec},
		{"device id", "", []DeviceSpec{{Station: "st-1", Device: "-d", Kind: schemas.KindAC}}, ErrSpec},
		{"kind", "", []DeviceSpec{{Station: "st-1", Device: "d1", Kind: "fridge"}}, ErrSpec},
		{"duplicate", "", []DeviceSpec{good, good}, ErrSpec},
		{"scheme", "http://127.0.0.1:1", []DeviceSpec{good}, ErrBroker},
		{"no host", "tcp://", []DeviceSpec{good}, ErrBroker},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewFleet(FleetOptions{Broker: c.broker, Devices: c.specs})
			if !errors.Is(err, c.want) {
				t.Errorf("NewFleet: %v, want %v", err, c.want)
			}
		})
	}

	d := NewDevice(DeviceSpec{Station: "st-1", Device: "d1", Kind: "fridge"}, DeviceOptions{})
	if err := d.Run(t.Context()); !errors.Is(err, ErrSpec) {
		t.Errorf("Run of a bad spec: %v, want ErrSpec", err)
	}
	if err := d.Jam(); !errors.Is(err, ErrSpec) {
		t.Errorf("Jam on a bad spec: %v, want ErrSpec", err)
	}
	if err := NewDevice(good, DeviceOptions{}).PowerCut(time.Second); !errors.Is(err, ErrOffline) {
		t.Errorf("PowerCut while not running: %v, want ErrOffline", err)
	}
}

// farFuture is an expiry no test reaches.
func farFuture() int64 { return time.Now().Add(time.Hour).UnixMilli() }
