package controller

import (
	"testing"
	"time"

	"github.com/waystation/waystation/schemas"
)

// stationDevices of ys-a, each connected with a will.
var ysA = []string{"ys-a-ac", "ys-a-lock", "ys-a-chg", "ys-a-aed"}

// offline waits until the twins of ids are offline.
func (r *alertRig) offline(t *testing.T, ids ...string) {
	t.Helper()
	if !poll(func() bool {
		for _, id := range ids {
			if tw, ok := r.twins.Get(id); !ok || tw.Online {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("%v not all offline", ids)
	}
	r.settle(t)
}

// TestAlertOfflineByWill: a device alone at its station that leaves its
// will is offline at once (past the start-up grace), and back with its
// next message.
func TestAlertOfflineByWill(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	r.pastGrace()
	ac := r.connect(t, "ys-solo-ac")
	r.settle(t)
	ac.cut()
	a := r.alert(t, "ys-solo", "ys-solo-ac", RuleOffline)
	if a.Severity != SeverityMajor || a.Parent != "" {
		t.Fatalf("alert %+v", a)
	}
	r.clock.Add(time.Minute)
	ac = r.connect(t, "ys-solo-ac")
	r.resolved(t, a.ID)
}

// TestAlertStationDownFolds: when every device of a station drops at once
// (power cut: four wills), one station.down alert is raised and notified;
// the four device alerts are folded under it and notify nobody. The first
// device back resolves the station alert.
func TestAlertStationDownFolds(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	r.pastGrace()
	var devs []*device
	for _, id := range ysA {
		devs = append(devs, r.connect(t, id))
	}
	r.settle(t)
	for i, d := range devs {
		d.cut()
		if i == 1 {
			// The wills come in over a few seconds.
			r.offline(t, ysA[:2]...)
			r.alerts.Sweep()
			r.clock.Add(20 * time.Second)
		}
	}
	r.offline(t, ysA...)
	r.alerts.Sweep()
	st := r.alert(t, "ys-a", "", RuleStationDown)
	if st.Severity != SeverityCritical || st.Device != "" {
		t.Fatalf("station alert %+v", st)
	}
	for _, id := range ysA {
		a := r.alert(t, "ys-a", id, RuleOffline)
		if a.Parent != st.ID {
			t.Fatalf("%s not folded under %s: %+v", id, st.ID, a)
		}
	}
	if notes := r.notes.all(); len(notes) != 1 || notes[0].Type != NoticeAlertRaised ||
		notes[0].Data.(Alert).Rule != RuleStationDown {
		t.Fatalf("notices %+v", notes)
	}
	r.clock.Add(5 * time.Minute)
	r.connect(t, "ys-a-ac")
	r.resolved(t, st.ID)
	if list := r.alerts.List(AlertFilter{Rule: RuleOffline, State: AlertFiring}); len(list) != 3 {
		t.Fatalf("still offline: %s", r.dump())
	}
}

// TestAlertOneDeviceDownIsNotAStation: one device's will at a station whose
// other devices keep reporting is that device's alert, raised as soon as
// the others have reported; a device whose station goes quiet only in part
// waits the station window.
func TestAlertOneDeviceDownIsNotAStation(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	r.pastGrace()
	devs := map[string]*device{}
	for _, id := range ysA {
		devs[id] = r.connect(t, id)
	}
	r.settle(t)
	devs["ys-a-lock"].cut()
	r.offline(t, "ys-a-lock")
	r.alerts.Sweep()
	r.none(t, "ys-a", "ys-a-lock", RuleOffline) // held for the rest of the station
	r.clock.Add(30 * time.Second)
	devs["ys-a-ac"].send(t, schemas.ChannelTelemetry, acTelem(true, "cool", 26, 27, ""))
	devs["ys-a-chg"].send(t, schemas.ChannelTelemetry, chargerTelem(false, true, slot(1, "empty", 30)))
	r.settle(t)
	r.alerts.Sweep()
	r.none(t, "ys-a", "ys-a-lock", RuleOffline) // the AED has not reported yet
	devs["ys-a-aed"].send(t, schemas.ChannelTelemetry, aedTelem(true, "pass", 90, "2028-01-01", false, 20))
	r.settle(t)
	r.alerts.Sweep()
	a := r.alert(t, "ys-a", "ys-a-lock", RuleOffline)
	if a.Parent != "" {
		t.Fatalf("alert %+v", a)
	}
	r.none(t, "ys-a", "", RuleStationDown)

	// The AC drops; only the charger reports after it: the station is not
	// down, and the AC is paged when the station window has passed.
	devs["ys-a-ac"].cut()
	r.offline(t, "ys-a-ac")
	r.clock.Add(30 * time.Second)
	devs["ys-a-chg"].send(t, schemas.ChannelTelemetry, chargerTelem(false, true, slot(1, "empty", 30)))
	r.settle(t)
	r.alerts.Sweep()
	r.none(t, "ys-a", "ys-a-ac", RuleOffline)
	r.clock.Add(DefaultAlertStationWindow)
	r.alerts.Sweep()
	ac := r.alert(t, "ys-a", "ys-a-ac", RuleOffline)
	if ac.Parent != "" {
		t.Fatalf("alert %+v", ac)
	}
	r.none(t, "ys-a", "", RuleStationDown)
}

// TestAlertRestartRaisesNoStorm: after a restart, devices that drop and
// come back within the grace period page nobody, even when the whole
// station dropped; one that stays away is paged once, after the grace.
func TestAlertRestartRaisesNoStorm(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	clock := r.clock
	for _, id := range ysA {
		r.connect(t, id)
	}
	r.settle(t)

	r = r.restart(t, 10*time.Minute)
	// The devices reconnect to the restarted broker, and drop again.
	var devs []*device
	for _, id := range ysA {
		devs = append(devs, r.connect(t, id))
	}
	r.settle(t)
	for _, d := range devs {
		d.cut()
	}
	r.offline(t, ysA...)
	r.alerts.Sweep()
	clock.Add(time.Minute)
	for _, id := range ysA[:3] { // the AED stays away
		r.connect(t, id)
	}
	r.settle(t)
	r.alerts.Sweep()
	clock.Add(DefaultAlertGrace)
	r.alerts.Sweep()
	r.settle(t)
	raised := r.notes.of(NoticeAlertRaised, "")
	if len(raised) != 1 || raised[0].Data.(Alert).Device != "ys-a-aed" ||
		raised[0].Data.(Alert).Rule != RuleOffline {
		t.Fatalf("raised after the restart: %+v", raised)
	}
}

// TestAlertGraceAgain: Grace (the broker connection came back) holds
// offline alerts for another grace period.
func TestAlertGraceAgain(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	r.clock.Add(time.Hour)
	ac := r.connect(t, "ys-solo-ac")
	r.settle(t)
	r.alerts.Grace()
	ac.cut()
	r.offline(t, "ys-solo-ac")
	r.clock.Add(time.Minute)
	r.alerts.Sweep()
	r.none(t, "ys-solo", "ys-solo-ac", RuleOffline)
	r.clock.Add(DefaultAlertGrace)
	r.alerts.Sweep()
	r.alert(t, "ys-solo", "ys-solo-ac", RuleOffline)
}
