package simulators

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/waystation/waystation/schemas"
)

// TestLockAsksThePlatformAndFallsBack: at dawn, sped up, workers come to
// the door; while the platform answers, its answers decide and show in the
// events; when it stops answering, the terminal decides from its
// allow-list after the timeout.
func TestLockAsksThePlatformAndFallsBack(t *testing.T) {
	b := startBroker(t)
	w := watchLive(t, b)
	s := spec("ys-001", "ys-001-lock", schemas.KindLock)
	s.Interval = time.Hour // only visitors make it publish
	dawn := time.Date(2025, 7, 20, 4, 30, 0, 0, shanghai())
	d := NewDevice(s, DeviceOptions{Broker: b.url, Seed: 4, Clock: NewClock(dawn, 900),
		AccessTimeout: 300 * time.Millisecond})

	// The platform: grant every request while answering is on.
	var mu sync.Mutex
	answering := true
	answered := map[string]bool{}
	reqTopic := schemas.DeviceTopic("ys-001", s.Device, schemas.ChannelAccessReq)
	tok := w.client.Subscribe(reqTopic, 1, func(c paho.Client, m paho.Message) {
		req, err := schemas.DecodeAccessRequest(m.Payload())
		if err != nil {
			t.Errorf("access request %s: %v", m.Payload(), err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !answering {
			return
		}
		answered[req.ID] = true
		res, _ := json.Marshal(schemas.AccessResponse{ID: req.ID, Granted: true, UnlockS: 8})
		c.Publish(schemas.DeviceTopic("ys-001", s.Device, schemas.ChannelAccessRes), 1, false, res)
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	runDevice(t, d)

	byPlatform := func() int {
		n := 0
		for _, e := range w.events(s.Device) {
			if e.Type == schemas.EventAccessGranted && e.Detail == detailPlatform {
				n++
			}
		}
		return n
	}
	eventually(t, 10*time.Second, "three visitors let in by the platform", func() bool {
		return byPlatform() >= 3
	})
	tms := w.telemetry(s.Device, s.Kind)
	opened := false
	for _, tm := range tms {
		opened = opened || (tm.Lock.Door == doorOpen && tm.Lock.Bolt == boltUnlocked)
	}
	if !opened {
		t.Errorf("no telemetry showed the door open after a grant: %d messages", len(tms))
	}

	mu.Lock()
	answering = false
	mu.Unlock()
	eventually(t, 10*time.Second, "a visitor decided by the allow-list", func() bool {
		for _, e := range w.events(s.Device) {
			if e.Type == schemas.EventAccessGranted && e.Detail == detailOffline {
				return true
			}
		}
		return false
	})
	mu.Lock()
	defer mu.Unlock()
	for _, m := range w.of(s.Device, schemas.ChannelAccessReq) {
		req, _ := schemas.DecodeAccessRequest(m.payload)
		if !strings.HasPrefix(req.Token, "ft_") && !strings.HasPrefix(req.Token, "nc_") &&
			!strings.HasPrefix(req.Token, "qr_") {
			t.Errorf("token %q is not an opaque credential token", req.Token)
		}
	}
	if len(answered) < 3 {
		t.Errorf("platform answered %d requests", len(answered))
	}
}

// TestACCommandCoolsTheRoom: switched on by a command on a July afternoon
// at speed 600, the unit pulls its room down to the setpoint within the
// simulated hour and the telemetry shows it.
func TestACCommandCoolsTheRoom(t *testing.T) {
	b := startBroker(t)
	w := watchLive(t, b)
	s := spec("ys-003", "ys-003-ac", schemas.KindAC)
	s.Interval = time.Minute
	afternoon := time.Date(2025, 7, 22, 14, 0, 0, 0, shanghai())
	clock := NewClock(afternoon, 600)
	d := NewDevice(s, DeviceOptions{Broker: b.url, Seed: 2, Clock: clock})

	// Switched off before the run starts, so the room is hot.
	d.mu.Lock()
	ac := d.model.(*acModel)
	ac.power = false
	ac.roomC = 34
	d.mu.Unlock()
	runDevice(t, d)
	eventually(t, 5*time.Second, "first telemetry", func() bool {
		return len(w.telemetry(s.Device, s.Kind)) > 0
	})
	if room := w.telemetry(s.Device, s.Kind)[0].AC.RoomC; room < 30 {
		t.Fatalf("room %.1f °C before the command, want hot", room)
	}

	w.send("ys-003", s.Device, schemas.Command{ID: "cool-1", Name: schemas.CmdACSet,
		ExpiresAt: clock.Now().Add(time.Hour).UnixMilli(),
		Args:      map[string]any{"power": true, "mode": "cool", "setpoint_c": 26.0}})
	sent := clock.Now()
	eventually(t, 15*time.Second, "room cooled to about 26 °C", func() bool {
		tms := w.telemetry(s.Device, s.Kind)
		last := tms[len(tms)-1].AC
		return last.Power && last.RoomC < 26.8
	})
	if took := clock.Now().Sub(sent); took > 90*time.Minute {
		t.Errorf("took %v of simulated time to cool", took)
	}
	if r := w.results(s.Device, "cool-1"); len(r) != 1 || !r[0].OK {
		t.Errorf("answer %+v", r)
	}
}

// TestAEDSelfTestsAtNightOnTime: at speed 3600 from 01:00, the nightly
// self-test is published when it runs, stamped between 02:00 and 04:00.
func TestAEDSelfTestsAtNightOnTime(t *testing.T) {
	b := startBroker(t)
	w := watchLive(t, b)
	s := spec("ys-002", "ys-002-aed", schemas.KindAED)
	s.Interval = 6 * time.Hour
	night := time.Date(2025, 11, 3, 1, 0, 0, 0, shanghai())
	clock := NewClock(night, 3600)
	d := NewDevice(s, DeviceOptions{Broker: b.url, Seed: 1, Clock: clock})
	runDevice(t, d)

	var test schemas.Event
	eventually(t, 6*time.Second, "a self-test event", func() bool {
		for _, e := range w.events(s.Device) {
			if e.Type == schemas.EventSelfTest {
				test = e
				return true
			}
		}
		return false
	})
	at := time.UnixMilli(test.TS).In(shanghai())
	if at.Hour() < selfTestFromHour || at.Hour() >= selfTestFromHour+2 || test.Detail != selfTestPass {
		t.Errorf("self-test %+v at %v", test, at)
	}
	// Published when it ran, not at the next six-hourly report.
	tms := w.telemetry(s.Device, s.Kind)
	if len(tms) < 2 || tms[len(tms)-1].AED.SelfTestAt != test.TS {
		t.Errorf("telemetry after the self-test: %+v", tms)
	}
}

// TestLinkDownKeepsEventsAndSkipsTheBoot: a link down for an hour at
// lunchtime leaves the will; the terminal goes on letting workers in from
// its allow-list, then comes back without a boot event and sends what
// happened meanwhile.
func TestLinkDownKeepsEventsAndSkipsTheBoot(t *testing.T) {
	b := startBroker(t)
	w := watchLive(t, b)
	s := spec("ys-005", "ys-005-lock", schemas.KindLock)
	s.Interval = time.Hour
	noon := time.Date(2025, 7, 20, 11, 0, 0, 0, shanghai())
	clock := NewClock(noon, 1800)
	d := NewDevice(s, DeviceOptions{Broker: b.url, Seed: 9, Clock: clock})
	runDevice(t, d)
	eventually(t, 5*time.Second, "connected", d.Connected)
	first := d.Conn()
	cut := clock.Now()
	if err := d.LinkDown(time.Hour); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "back with a new connection", func() bool {
		return d.Connected() && d.Conn() != first
	})
	// The watcher may see the new connection's status a little after the
	// device counts itself connected.
	var sts []schemas.Status
	eventually(t, 5*time.Second, "three statuses", func() bool {
		sts = w.statuses(s.Device)
		return len(sts) >= 3
	})
	if len(sts) != 3 || sts[1].Online || sts[1].Conn != first {
		t.Errorf("statuses %+v, want online, the will, online", sts)
	}
	eventually(t, 5*time.Second, "the visits of the hour offline", func() bool {
		during := 0
		for _, e := range w.events(s.Device) {
			at := time.UnixMilli(e.TS)
			if (e.Type == schemas.EventAccessGranted || e.Type == schemas.EventAccessDenied) &&
				!at.Before(cut) && at.Before(cut.Add(time.Hour)) {
				during++
			}
		}
		return during > 0
	})
	boots := 0
	for _, e := range w.events(s.Device) {
		if e.Type == schemas.EventBoot {
			boots++
		}
	}
	if boots != 1 {
		t.Errorf("%d boot events, want only the first", boots)
	}
	if st := d.Stats(); st.Drops != 1 || st.Connects != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestChargerRunawayOverTheWire: sped up, a runaway bay is cut, climbs and
// smokes, and all of it reaches the platform.
func TestChargerRunawayOverTheWire(t *testing.T) {
	b := startBroker(t)
	w := watchLive(t, b)
	s := spec("ys-001", "ys-001-chg", schemas.KindCharger)
	s.Interval = time.Minute
	d := NewDevice(s, DeviceOptions{Broker: b.url, Seed: 3,
		Clock: NewClock(time.Date(2025, 7, 21, 2, 0, 0, 0, shanghai()), 600)})
	runDevice(t, d)
	eventually(t, 5*time.Second, "connected", d.Connected)
	if err := d.Runaway(2); err != nil {
		t.Fatal(err)
	}
	if err := d.SetMains(false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "smoke from bay 2", func() bool {
		tms := w.telemetry(s.Device, s.Kind)
		last := tms[len(tms)-1].Charger
		sl := last.Slots[1]
		return last.Smoke && !last.Mains && sl.State == slotFault && sl.TempC != nil &&
			*sl.TempC > smokeFromC
	})
	want := map[string]bool{schemas.EventMainsLost: false, schemas.EventSmoke: false,
		schemas.EventFaultRaised: false}
	for _, e := range w.events(s.Device) {
		if _, ok := want[e.Type]; ok && (e.Type != schemas.EventFaultRaised ||
			(e.Code == codeRunaway && e.Slot == 2)) {
			want[e.Type] = true
		}
	}
	for typ, seen := range want {
		if !seen {
			t.Errorf("no %s event", typ)
		}
	}
}

// TestLockKeepsThePlatformsAllowList: a terminal given the platform's
// tokens and its retained allow-list decides from that list when the
// platform does not answer, and reports the list's version.
func TestLockKeepsThePlatformsAllowList(t *testing.T) {
	b := startBroker(t)
	w := watchLive(t, b)
	s := spec("ys-001", "ys-001-lock", schemas.KindLock)
	s.Interval = time.Hour
	listed, unlisted := "wsc_"+strings.Repeat("a", 40), "wsc_"+strings.Repeat("b", 40)
	sum := sha256.Sum256([]byte(listed))
	list, _ := json.Marshal(schemas.AccessList{Version: 7,
		Entries: []string{hex.EncodeToString(sum[:])}})
	tok := w.client.Publish(schemas.DeviceTopic("ys-001", s.Device, schemas.ChannelAccessList), 1,
		true, list)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	noon := time.Date(2025, 7, 20, 11, 30, 0, 0, shanghai())
	d := NewDevice(s, DeviceOptions{Broker: b.url, Seed: 5, Clock: NewClock(noon, 900),
		AccessTimeout: 50 * time.Millisecond, Tokens: []string{listed, unlisted}})
	runDevice(t, d)

	decided := func() (reqs map[string]int, granted, denied int) {
		reqs = map[string]int{}
		for _, m := range w.of(s.Device, schemas.ChannelAccessReq) {
			r, _ := schemas.DecodeAccessRequest(m.payload)
			reqs[r.Token]++
		}
		for _, e := range w.events(s.Device) {
			switch e.Type {
			case schemas.EventAccessGranted:
				granted++
			case schemas.EventAccessDenied:
				denied++
			}
		}
		return reqs, granted, denied
	}
	eventually(t, 10*time.Second, "both workers decided, each request once", func() bool {
		reqs, granted, denied := decided()
		return reqs[listed] > 0 && reqs[unlisted] > 0 && granted+denied == reqs[listed]+reqs[unlisted]
	})
	reqs, granted, denied := decided()
	if granted != reqs[listed] || denied != reqs[unlisted] {
		t.Errorf("requests %v: %d granted, %d denied; want the listed worker in and the other out",
			reqs, granted, denied)
	}
	for _, e := range w.events(s.Device) {
		if e.Type == schemas.EventAccessGranted && e.Detail != detailOffline {
			t.Errorf("granted %+v, want decided by the allow-list", e)
		}
	}
	tms := w.telemetry(s.Device, s.Kind)
	if v := tms[len(tms)-1].Lock.AllowlistVersion; v == nil || *v != 7 {
		t.Errorf("telemetry reports allow-list version %v, want 7", v)
	}
}
