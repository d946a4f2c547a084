package controller

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// TestAlertACFaultRaisedAndResolved: a fault code in an AC's telemetry
// (paho) raises one major alert, told on the notifier and on the alert
// topic (QoS 1); healthy telemetry from another client (mosquitto_pub)
// resolves it by itself.
func TestAlertACFaultRaisedAndResolved(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	var mu sync.Mutex
	var published []AlertMessage
	if err := r.bus.Subscribe(schemas.AlertTopic("+"), 1, func(topic string, p []byte, _ bool) {
		var m AlertMessage
		if err := json.Unmarshal(p, &m); err != nil || topic != schemas.AlertTopic(m.Alert.Station) {
			t.Errorf("alert message on %s: %s (%v)", topic, p, err)
		}
		mu.Lock()
		published = append(published, m)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}

	ac := r.connect(t, "ys-a-ac")
	ac.send(t, schemas.ChannelTelemetry, acTelem(true, "cool", 26, 27, "E4"))
	a := r.alert(t, "ys-a", "ys-a-ac", RuleACFault)
	if a.Severity != SeverityMajor || a.State != AlertFiring || a.Count != 1 ||
		!a.FirstSeen.Equal(alertRigStart) || a.Summary == "" {
		t.Fatalf("alert %+v", a)
	}
	r.clock.Add(30 * time.Second)
	ac.send(t, schemas.ChannelTelemetry, acTelem(true, "cool", 26, 27, "E4"))
	r.settle(t)
	if a, _ = r.alerts.Get(a.ID); a.Count != 1 || !a.LastSeen.Equal(alertRigStart.Add(30*time.Second)) {
		t.Fatalf("a lasting fault counted again, or last seen not moved: %+v", a)
	}

	r.clock.Add(30 * time.Second)
	r.mosquittoPub(t, "ys-a-ac", schemas.ChannelTelemetry, acTelem(true, "cool", 26, 26.5, ""))
	a = r.resolved(t, a.ID)
	if a.ResolvedBy != ResolvedByCondition || a.AckedBy != "" {
		t.Fatalf("resolved %+v", a)
	}

	notes := r.notes.all()
	if len(notes) != 2 || notes[0].Type != NoticeAlertRaised || notes[1].Type != NoticeAlertResolved ||
		notes[0].Key == notes[1].Key || notes[0].Station != "ys-a" {
		t.Fatalf("notices %+v", notes)
	}
	if !poll(func() bool { mu.Lock(); defer mu.Unlock(); return len(published) == 2 }) {
		t.Fatalf("published %d alert messages, want 2", len(published))
	}
	mu.Lock()
	if published[0].Type != NoticeAlertRaised || published[0].Key != notes[0].Key ||
		published[1].Alert.State != AlertResolved {
		t.Fatalf("published %+v", published)
	}
	mu.Unlock()
	if got := testutil.ToFloat64(r.alerts.notices.WithLabelValues(NoticeAlertRaised)); got != 1 {
		t.Fatalf("raised notices counted %v", got)
	}
	if n := testutil.CollectAndCount(r.alerts.latency); n != 1 {
		t.Fatalf("latency histogram has %d series", n)
	}
}

// TestAlertDuplicateFaultsMakeOneAlert: the same fault from two connections
// of a device a few milliseconds apart makes one alert, counted twice, and
// one notification.
func TestAlertDuplicateFaultsMakeOneAlert(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	ac := r.connect(t, "ys-a-ac")
	ac.send(t, schemas.ChannelEvent, eventJSON(schemas.EventFaultRaised, "E7"))
	r.clock.Add(5 * time.Millisecond)
	// A second connection (it takes over the session) sends the same.
	r.mosquittoPub(t, "ys-a-ac", schemas.ChannelEvent, eventJSON(schemas.EventFaultRaised, "E7"))
	if !poll(func() bool {
		list := r.alerts.List(AlertFilter{Rule: RuleACFault})
		return len(list) == 1 && list[0].Count == 2
	}) {
		t.Fatalf("alerts after two identical faults: %s", r.dump())
	}
	r.settle(t)
	if n := len(r.notes.of("", RuleACFault)); n != 1 {
		t.Fatalf("%d notices, want one", n)
	}
}

// TestAlertConcurrentDuplicatesAreAtomic: identical observations handled
// on two workers at once make one alert and one notice every time.
func TestAlertConcurrentDuplicatesAreAtomic(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	d, _ := r.reg.Device("ys-a-lock")
	for i := range 50 {
		ev := &schemas.Event{Type: schemas.EventDoorForced}
		obs := Observation{Device: d, Channel: schemas.ChannelEvent, At: r.clock.Now(), Event: ev}
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.alerts.Observe(obs)
			}()
		}
		wg.Wait()
		r.settle(t)
		list := r.alerts.List(AlertFilter{Rule: RuleDoorForced, State: AlertFiring})
		if len(list) != 1 || list[0].Count != 2 {
			t.Fatalf("round %d: %s", i, r.dump())
		}
		if _, err := r.alerts.Resolve(list[0].ID, "op"); err != nil {
			t.Fatal(err)
		}
		r.clock.Add(6 * time.Minute) // past the flap window: a new alert next round
	}
	if n := len(r.notes.of(NoticeAlertRaised, RuleDoorForced)); n != 50 {
		t.Fatalf("%d raised notices for 50 rounds", n)
	}
}

// TestAlertFlappingReopens: a condition that clears and returns within
// five minutes reopens its alert; later, it is a new alert.
func TestAlertFlappingReopens(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	lock := r.connect(t, "ys-a-lock")
	lock.send(t, schemas.ChannelTelemetry, lockTelem("closed", "jammed", 80, false))
	a := r.alert(t, "ys-a", "ys-a-lock", RuleBoltJammed)
	r.clock.Add(time.Minute)
	lock.send(t, schemas.ChannelTelemetry, lockTelem("closed", "locked", 80, false))
	r.resolved(t, a.ID)
	r.clock.Add(4 * time.Minute)
	lock.send(t, schemas.ChannelTelemetry, lockTelem("closed", "jammed", 80, false))
	b := r.alert(t, "ys-a", "ys-a-lock", RuleBoltJammed)
	if b.ID != a.ID || b.Count != 2 || b.State != AlertFiring || !b.ResolvedAt.IsZero() {
		t.Fatalf("flap did not reopen %s: %+v", a.ID, b)
	}
	if n := len(r.notes.of(NoticeAlertReopened, RuleBoltJammed)); n != 1 {
		got, _ := r.alerts.Get(a.ID)
		t.Fatalf("%d reopened notices: b %+v now %+v", n, b, got)
	}
	r.clock.Add(time.Minute)
	lock.send(t, schemas.ChannelTelemetry, lockTelem("closed", "locked", 80, false))
	r.resolved(t, a.ID)
	r.clock.Add(5*time.Minute + time.Second)
	lock.send(t, schemas.ChannelTelemetry, lockTelem("closed", "jammed", 80, false))
	c := r.alert(t, "ys-a", "ys-a-lock", RuleBoltJammed)
	if c.ID == a.ID || c.Count != 1 {
		t.Fatalf("a return after the flap window reopened the old alert: %+v", c)
	}
	if old, _ := r.alerts.Get(a.ID); old.State != AlertResolved {
		t.Fatalf("old alert %+v", old)
	}
}

// TestAlertAcknowledgeAndEventOnly: an event-only alert (door forced)
// stays until a person resolves it; acknowledging records who, when and
// the note, and stops escalation.
func TestAlertAcknowledgeAndEventOnly(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	lock := r.connect(t, "ys-a-lock")
	lock.send(t, schemas.ChannelEvent, eventJSON(schemas.EventDoorForced, ""))
	a := r.alert(t, "ys-a", "ys-a-lock", RuleDoorForced)
	if a.Severity != SeverityCritical || !a.Manual ||
		!a.NextEscalation.Equal(alertRigStart.Add(10*time.Minute)) {
		t.Fatalf("alert %+v", a)
	}
	// Healthy telemetry does not resolve it.
	lock.send(t, schemas.ChannelTelemetry, lockTelem("closed", "locked", 80, false))
	r.settle(t)
	r.clock.Add(2 * time.Minute)
	ack, err := r.alerts.Acknowledge(a.ID, "night-1", "guard on the way")
	if err != nil {
		t.Fatal(err)
	}
	if ack.State != AlertAcknowledged || ack.AckedBy != "night-1" || ack.AckNote != "guard on the way" ||
		!ack.AckedAt.Equal(r.clock.Now()) || !ack.NextEscalation.IsZero() {
		t.Fatalf("acknowledged %+v", ack)
	}
	if _, err := r.alerts.Acknowledge(a.ID, "night-2", ""); err == nil {
		t.Fatal("acknowledged twice")
	}
	r.clock.Add(time.Hour)
	r.alerts.Sweep()
	r.settle(t)
	if n := len(r.notes.of(NoticeAlertEscalated, "")); n != 0 {
		t.Fatalf("an acknowledged alert escalated %d times", n)
	}
	res, err := r.alerts.Resolve(a.ID, "night-1")
	if err != nil || res.State != AlertResolved || res.ResolvedBy != "night-1" || res.AckedBy != "night-1" {
		t.Fatalf("resolve: %+v %v", res, err)
	}
	r.settle(t)
	types := []string{}
	for _, n := range r.notes.of("", RuleDoorForced) {
		types = append(types, n.Type)
	}
	if len(types) != 3 || types[1] != NoticeAlertAcknowledged || types[2] != NoticeAlertResolved {
		t.Fatalf("notices %v", types)
	}
}

// TestAlertEscalatesUnacknowledgedCriticals: a critical alert nobody
// acknowledges is told again after 10 minutes, then after 20, 40...
func TestAlertEscalatesUnacknowledgedCriticals(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	chg := r.connect(t, "ys-a-chg")
	chg.send(t, schemas.ChannelTelemetry, chargerTelem(true, true, slot(1, "full", 30)))
	a := r.alert(t, "ys-a", "ys-a-chg", RuleSmoke)
	steps := []struct {
		wait  time.Duration
		level int
	}{{9 * time.Minute, 0}, {time.Minute, 1}, {19 * time.Minute, 1}, {time.Minute, 2},
		{40 * time.Minute, 3}}
	for _, s := range steps {
		r.clock.Add(s.wait)
		r.alerts.Sweep()
		r.settle(t)
		if got, _ := r.alerts.Get(a.ID); got.Escalation != s.level {
			t.Fatalf("after %v more: escalation %d, want %d", s.wait, got.Escalation, s.level)
		}
	}
	esc := r.notes.of(NoticeAlertEscalated, RuleSmoke)
	if len(esc) != 3 || esc[2].Data.(Alert).Escalation != 3 || esc[0].Key == esc[1].Key {
		t.Fatalf("escalation notices %+v", esc)
	}
}

// TestAlertDoorHeldAcrossRestart: a door held open when the controller
// restarts stays held while reports show it open, and resolves when one
// shows it closed.
func TestAlertDoorHeldAcrossRestart(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	lock, held := heldByTerminal(t, r)
	lock.c.Disconnect(20)

	r2 := r.restart(t, time.Minute)
	lock2 := r2.connect(t, "ys-a-lock")
	lock2.send(t, schemas.ChannelTelemetry, lockTelem("open", "unlocked", 80, false))
	r2.settle(t)
	if a, _ := r2.alerts.Get(held.ID); a.State != AlertFiring {
		t.Fatalf("a door still open after the restart: alert %s", a.State)
	}
	lock2.send(t, schemas.ChannelTelemetry, lockTelem("closed", "locked", 80, false))
	r2.resolved(t, held.ID)
}

// TestAlertRestartMidEscalation: a restart keeps the open alert, its
// escalation level and timer; it neither loses nor repeats an alert.
func TestAlertRestartMidEscalation(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	clock := r.clock
	aed := r.connect(t, "ys-a-aed")
	aed.send(t, schemas.ChannelTelemetry, aedTelem(false, "fail", 90, "2027-06-01", false, 20))
	a := r.alert(t, "ys-a", "ys-a-aed", RuleAEDNotReady)
	clock.Add(10 * time.Minute)
	r.alerts.Sweep()
	r.settle(t)
	if got, _ := r.alerts.Get(a.ID); got.Escalation != 1 {
		t.Fatalf("escalation %d before restart", got.Escalation)
	}
	aed.c.Disconnect(20)

	r2 := r.restart(t, 5*time.Minute)
	got, err := r2.alerts.Get(a.ID)
	if err != nil || got.Escalation != 1 || got.State != AlertFiring ||
		!got.NextEscalation.Equal(alertRigStart.Add(30*time.Minute)) {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	// The same condition after the restart is the same alert.
	aed2 := r2.connect(t, "ys-a-aed")
	aed2.send(t, schemas.ChannelTelemetry, aedTelem(false, "fail", 90, "2027-06-01", false, 20))
	r2.settle(t)
	if list := r2.alerts.List(AlertFilter{Rule: RuleAEDNotReady}); len(list) != 1 {
		t.Fatalf("alerts after restart: %s", r2.dump())
	}
	clock.Add(14 * time.Minute)
	r2.alerts.Sweep()
	r2.settle(t)
	if n := len(r2.notes.of(NoticeAlertEscalated, "")); n != 0 {
		t.Fatalf("escalated %d times before its timer", n)
	}
	clock.Add(time.Minute)
	r2.alerts.Sweep()
	r2.settle(t)
	esc := r2.notes.of(NoticeAlertEscalated, RuleAEDNotReady)
	if len(esc) != 1 || esc[0].Data.(Alert).Escalation != 2 {
		t.Fatalf("escalations after restart %+v", esc)
	}
	if n := len(r2.notes.of(NoticeAlertRaised, "")); n != 0 {
		t.Fatalf("raised %d alerts again after the restart", n)
	}
}

// TestAlertSilences: a silenced alert is recorded and visible but notifies
// nobody; when the silence ends while it still fires, it notifies. An
// opened AED cabinet is never silenced.
func TestAlertSilences(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	s, err := r.alerts.AddSilence(Silence{Station: "ys-a", Reason: "technician replacing the lock",
		CreatedBy: "night-1", Expires: r.clock.Now().Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.alerts.AddSilence(Silence{Rule: RuleAEDOpened, Reason: "x",
		Expires: r.clock.Now().Add(time.Hour)}); err == nil {
		t.Fatal("silenced the AED cabinet rule")
	}
	if _, err := r.alerts.AddSilence(Silence{Station: "ys-a", Expires: r.clock.Now().Add(time.Hour)}); err == nil {
		t.Fatal("a silence without a reason")
	}
	lock := r.connect(t, "ys-a-lock")
	lock.send(t, schemas.ChannelEvent, eventJSON(schemas.EventTamper, ""))
	a := r.alert(t, "ys-a", "ys-a-lock", RuleTamper)
	if !a.Silenced || a.SilencedBy != s.ID {
		t.Fatalf("alert not silenced: %+v", a)
	}
	aed := r.connect(t, "ys-a-aed")
	aed.send(t, schemas.ChannelEvent, eventJSON(schemas.EventCabinetOpened, ""))
	opened := r.alert(t, "ys-a", "ys-a-aed", RuleAEDOpened)
	if opened.Silenced || opened.Severity != SeverityCritical {
		t.Fatalf("AED alert %+v", opened)
	}
	r.clock.Add(time.Hour)
	r.alerts.Sweep()
	r.settle(t)
	if n := len(r.notes.of("", RuleTamper)); n != 0 {
		t.Fatalf("a silenced alert notified %d times", n)
	}
	if n := len(r.notes.of(NoticeAlertRaised, RuleAEDOpened)); n != 1 {
		t.Fatalf("AED cabinet opened notified %d times", n)
	}
	if list := r.alerts.Silences(nil); len(list) != 1 || list[0].ID != s.ID {
		t.Fatalf("silences %+v", list)
	}
	r.clock.Add(time.Hour)
	r.alerts.Sweep()
	r.settle(t)
	un := r.notes.of(NoticeAlertUnsilenced, RuleTamper)
	if len(un) != 1 || un[0].Data.(Alert).Silenced {
		t.Fatalf("unsilenced notices %+v", un)
	}
	if list := r.alerts.Silences(nil); len(list) != 0 {
		t.Fatalf("expired silence still listed: %+v", list)
	}
}

// TestAlertRuntimeDeviceGoesSilent: a device registered while everything
// runs is watched from its first message and, once silent, is offline
// within its timeout plus a check interval; it resolves when it speaks.
func TestAlertRuntimeDeviceGoesSilent(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	if _, err := r.reg.AddStation(devices.Station{ID: "ys-new", Name: "New", Lat: 32.6, Lon: 116.2,
		Hours: "24h", Org: "org-a"}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := r.reg.AddDevice(devices.Device{ID: "ys-new-ac", Station: "ys-new",
		Kind: schemas.KindAC, IntervalS: 20})
	if err != nil {
		t.Fatal(err)
	}
	r.secrets["ys-new-ac"] = secret
	r.clock.Add(3 * time.Minute) // past the start-up grace
	ac := r.connect(t, "ys-new-ac")
	ac.send(t, schemas.ChannelTelemetry, acTelem(false, "fan", 26, 27, ""))
	r.settle(t)
	const check = 10 * time.Second
	for elapsed := time.Duration(0); elapsed < 60*time.Second; elapsed += check {
		r.clock.Add(check)
		r.pres.Sweep()
		r.alerts.Sweep()
	}
	r.none(t, "ys-new", "ys-new-ac", RuleOffline)
	r.clock.Add(check)
	if n := r.pres.Sweep(); n != 1 {
		tw, _ := r.twins.Get("ys-new-ac")
		t.Fatalf("presence marked %d offline; twin %+v", n, tw)
	}
	a := r.alert(t, "ys-new", "ys-new-ac", RuleOffline)
	if a.Severity != SeverityMajor || a.Parent != "" {
		t.Fatalf("offline alert %+v", a)
	}
	ac.send(t, schemas.ChannelTelemetry, acTelem(false, "fan", 26, 27, ""))
	r.resolved(t, a.ID)
}

// Alerts and silences are numbered apart, each without gaps, and no id is
// given twice: not after a restart, not when the newest was deleted.
func TestAlertAndSilenceIDs(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	silence := func(r *alertRig) string {
		t.Helper()
		s, err := r.alerts.AddSilence(Silence{Station: "ys-b", Reason: "painting the shelter",
			Expires: r.clock.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return s.ID
	}
	if got := []string{silence(r), silence(r)}; !slices.Equal(got, []string{"s1", "s2"}) {
		t.Fatalf("first silences %v, want s1 s2", got)
	}
	lock := r.connect(t, "ys-a-lock")
	lock.send(t, schemas.ChannelEvent, eventJSON(schemas.EventTamper, ""))
	if a := r.alert(t, "ys-a", "ys-a-lock", RuleTamper); a.ID != "1" {
		t.Fatalf("first alert id %q after two silences, want 1", a.ID)
	}
	if _, err := r.alerts.RemoveSilence("s2"); err != nil {
		t.Fatal(err)
	}
	if got := silence(r); got != "s3" {
		t.Fatalf("silence after the newest was removed: %s, want s3", got)
	}
	if _, err := r.alerts.RemoveSilence("s3"); err != nil {
		t.Fatal(err)
	}
	r = r.restart(t, time.Minute)
	if got := silence(r); got != "s4" {
		t.Fatalf("silence after a restart that followed a removal: %s, want s4", got)
	}
	aed := r.connect(t, "ys-a-aed")
	aed.send(t, schemas.ChannelEvent, eventJSON(schemas.EventCabinetOpened, ""))
	if a := r.alert(t, "ys-a", "ys-a-aed", RuleAEDOpened); a.ID != "2" {
		t.Fatalf("alert after a restart: id %q, want 2", a.ID)
	}
}

// TestAlertIDsFromAnOlderFile: a data file from before alerts and silences
// kept their own counters numbered both from one, so after it is opened
// neither kind may give an id at or below the highest of either.
func TestAlertIDsFromAnOlderFile(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	lock := r.connect(t, "ys-a-lock")
	lock.send(t, schemas.ChannelEvent, eventJSON(schemas.EventTamper, ""))
	if a := r.alert(t, "ys-a", "ys-a-lock", RuleTamper); a.ID != "1" {
		t.Fatalf("first alert id %q, want 1", a.ID)
	}
	for range 4 {
		if _, err := r.alerts.AddSilence(Silence{Station: "ys-b", Reason: "painting the shelter",
			Expires: r.clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	// The older file: the same records, no sequences kept.
	r.shutdown(t)
	db, err := bolt.Open(r.dbPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketAlerts, bucketSilences} {
			if err := tx.Bucket(name).SetSequence(0); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	r.clock.Add(time.Minute)
	again := newAlertRig(t, alertRigOptions{dir: filepath.Dir(r.dbPath), clock: r.clock})
	again.secrets = r.secrets

	aed := again.connect(t, "ys-a-aed")
	aed.send(t, schemas.ChannelEvent, eventJSON(schemas.EventCabinetOpened, ""))
	if a := again.alert(t, "ys-a", "ys-a-aed", RuleAEDOpened); a.ID != "5" {
		t.Fatalf("alert after opening the older file: id %q, want 5 (s4 was the highest id)", a.ID)
	}
	s, err := again.alerts.AddSilence(Silence{Station: "ys-b", Reason: "painting the shelter",
		Expires: again.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "s5" {
		t.Fatalf("silence after opening the older file: %s, want s5", s.ID)
	}
}
