package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/schemas"
)

// pastGrace moves the rig's clock past the start-up grace.
func (r *alertRig) pastGrace() { r.clock.Add(DefaultAlertGrace + time.Second) }

// TestAlertACNotCooling: an AC on in cool mode for 20 minutes with the room
// more than 2 °C above its setpoint and falling less than 1 °C raises
// ac.not_cooling; a room that starts falling resolves it.
func TestAlertACNotCooling(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	ac := r.connect(t, "ys-b-ac")
	for i, room := range []float64{30, 29.9, 29.8, 29.7} {
		ac.send(t, schemas.ChannelTelemetry, acTelem(true, "cool", 24, room, ""))
		r.settle(t)
		if i < 3 {
			r.clock.Add(5 * time.Minute)
		}
	}
	r.none(t, "ys-b", "ys-b-ac", RuleACNotCooling) // 15 minutes only
	r.clock.Add(5 * time.Minute)
	r.mosquittoPub(t, "ys-b-ac", schemas.ChannelTelemetry, acTelem(true, "cool", 24, 29.6, ""))
	a := r.alert(t, "ys-b", "ys-b-ac", RuleACNotCooling)
	if a.Severity != SeverityMajor || !strings.Contains(a.Summary, "fell 0.4 °C in 20m") {
		t.Fatalf("alert %+v", a)
	}
	r.clock.Add(5 * time.Minute)
	ac = r.connect(t, "ys-b-ac")                                              // mosquitto_pub took its session over
	ac.send(t, schemas.ChannelTelemetry, acTelem(true, "cool", 24, 28.5, "")) // 1.4 °C since 20 min ago
	r.resolved(t, a.ID)
	r.none(t, "ys-b", "ys-b-ac", RuleACNotHeating)
}

// TestAlertACNotHeating: the winter counterpart, resolved when the AC is
// switched off.
func TestAlertACNotHeating(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	ac := r.connect(t, "ys-b-ac")
	for range 5 {
		ac.send(t, schemas.ChannelTelemetry, acTelem(true, "heat", 20, 15.5, ""))
		r.settle(t)
		r.clock.Add(5 * time.Minute)
	}
	a := r.alert(t, "ys-b", "ys-b-ac", RuleACNotHeating)
	if !strings.Contains(a.Summary, "not heating") {
		t.Fatalf("alert %+v", a)
	}
	ac.send(t, schemas.ChannelTelemetry, acTelem(false, "heat", 20, 15.5, ""))
	r.resolved(t, a.ID)
}

// TestAlertDoorTerminal: bolt jammed (tested with flapping), door held
// open over 5 minutes (by the timer, with no new message), battery low,
// tamper from telemetry (resolved by a person).
func TestAlertDoorTerminal(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	lock := r.connect(t, "ys-a-lock")
	lock.send(t, schemas.ChannelTelemetry, lockTelem("open", "unlocked", 15, false))
	bat := r.alert(t, "ys-a", "ys-a-lock", RuleLockBattery)
	if bat.Severity != SeverityWarning {
		t.Fatalf("battery %+v", bat)
	}
	r.clock.Add(4 * time.Minute)
	r.alerts.Sweep()
	r.none(t, "ys-a", "ys-a-lock", RuleDoorHeld)
	r.clock.Add(90 * time.Second)
	r.alerts.Sweep()
	held := r.alert(t, "ys-a", "ys-a-lock", RuleDoorHeld)
	if held.Severity != SeverityMinor || !strings.Contains(held.Summary, "5m30s") {
		t.Fatalf("held %+v", held)
	}
	lock.send(t, schemas.ChannelTelemetry, lockTelem("closed", "locked", 80, true))
	r.resolved(t, held.ID)
	r.resolved(t, bat.ID)
	tamper := r.alert(t, "ys-a", "ys-a-lock", RuleTamper)
	lock.send(t, schemas.ChannelTelemetry, lockTelem("closed", "locked", 80, false))
	r.settle(t)
	if a, _ := r.alerts.Get(tamper.ID); a.State != AlertFiring || a.Severity != SeverityCritical {
		t.Fatalf("tamper resolved by itself: %+v", a)
	}
	lock.send(t, schemas.ChannelTelemetry, lockTelem("closed", "locked", 80, true))
	r.settle(t)
	if a, _ := r.alerts.Get(tamper.ID); a.Count != 2 {
		t.Fatalf("tamper again not counted: %+v", a)
	}
	if a, err := r.alerts.Resolve(tamper.ID, "technician"); err != nil || a.ResolvedBy != "technician" {
		t.Fatalf("resolve tamper: %+v %v", a, err)
	}
}

// heldByTerminal opens ys-a-lock's door and has its terminal report it
// held a minute later, sooner than the platform's own threshold; it
// returns the lock and the alert that raised.
func heldByTerminal(t *testing.T, r *alertRig) (*device, Alert) {
	t.Helper()
	lock := r.connect(t, "ys-a-lock")
	lock.send(t, schemas.ChannelTelemetry, lockTelem("open", "unlocked", 80, false))
	r.clock.Add(time.Minute)
	lock.send(t, schemas.ChannelEvent, eventJSON(schemas.EventDoorHeld, ""))
	return lock, r.alert(t, "ys-a", "ys-a-lock", RuleDoorHeld)
}

// TestAlertDoorHeldByTerminal: a terminal that reports its door held
// sooner than the platform's own threshold keeps the alert until a report
// shows the door closed; the open door's telemetry in between does not
// resolve it.
func TestAlertDoorHeldByTerminal(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	lock, held := heldByTerminal(t, r)
	r.clock.Add(30 * time.Second)
	lock.send(t, schemas.ChannelTelemetry, lockTelem("open", "unlocked", 80, false))
	r.alerts.Sweep()
	r.settle(t)
	if a, _ := r.alerts.Get(held.ID); a.State != AlertFiring {
		t.Fatalf("held alert %s while the door is still open", a.State)
	}
	lock.send(t, schemas.ChannelTelemetry, lockTelem("closed", "locked", 80, false))
	r.resolved(t, held.ID)

	// The next opening is judged afresh, by the platform's threshold.
	lock.send(t, schemas.ChannelTelemetry, lockTelem("open", "unlocked", 80, false))
	r.clock.Add(time.Minute)
	lock.send(t, schemas.ChannelTelemetry, lockTelem("open", "unlocked", 80, false))
	r.settle(t)
	if a, _ := r.alerts.Get(held.ID); a.State != AlertResolved {
		t.Fatalf("a new opening of a minute reopened the alert: %+v", a)
	}
}

// TestAlertChargerSlotOverheat: a slot at 60 °C or more is critical and is
// switched off at once with an audited command, which reaches the cabinet;
// a slot rising 5 °C a minute is too; both resolve when the slot cools.
func TestAlertChargerSlotOverheat(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	chg := r.connect(t, "ys-a-chg")
	chg.send(t, schemas.ChannelTelemetry, chargerTelem(false, true,
		slot(1, "charging", 35), slot(2, "charging", 40), slot(3, "charging", 63)))
	hot := r.alert(t, "ys-a", "ys-a-chg", RuleSlotOverheat)
	if hot.Subject != "3" || hot.Severity != SeverityCritical || !strings.Contains(hot.Summary, "63.0 °C") {
		t.Fatalf("alert %+v", hot)
	}
	select {
	case m := <-chg.cmds:
		cmd, err := schemas.DecodeCommand(m.Payload())
		if err != nil {
			t.Fatal(err)
		}
		slotN, _ := cmd.ArgInt("slot")
		on, _ := cmd.ArgBool("on")
		if cmd.Name != schemas.CmdChargerSlot || slotN != 3 || on {
			t.Fatalf("command %+v", cmd)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the cabinet got no command")
	}
	reqs := r.cmds.requests()
	if len(reqs) != 1 || reqs[0].Issuer != "rule:"+RuleSlotOverheat ||
		!strings.Contains(reqs[0].Reason, "alert "+hot.ID) {
		t.Fatalf("command requests %+v", reqs)
	}

	// Slot 2 rises 6 °C in 30 s: 12 °C a minute.
	r.clock.Add(30 * time.Second)
	chg.send(t, schemas.ChannelTelemetry, chargerTelem(false, true,
		slot(1, "charging", 35), slot(2, "charging", 46), slot(3, "off", 61)))
	var rising Alert
	if !poll(func() bool {
		for _, a := range r.alerts.List(AlertFilter{Rule: RuleSlotOverheat, State: AlertFiring}) {
			if a.Subject == "2" {
				rising = a
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no alert for slot 2: %s", r.dump())
	}
	if !strings.Contains(rising.Summary, "rising 12.0 °C a minute") {
		t.Fatalf("rising %+v", rising)
	}
	r.settle(t)
	if n := len(r.cmds.requests()); n != 2 {
		t.Fatalf("%d commands, want one per slot", n)
	}
	r.clock.Add(time.Minute)
	chg.send(t, schemas.ChannelTelemetry, chargerTelem(false, true,
		slot(1, "charging", 35), slot(2, "off", 45), slot(3, "off", 50)))
	r.resolved(t, hot.ID)
	r.resolved(t, rising.ID)
	if n := len(r.cmds.requests()); n != 2 {
		t.Fatalf("%d commands after cooling", n)
	}
}

// TestAlertChargerCabinet: smoke (critical), mains lost (major, by
// telemetry and by event), a slot in fault (minor), each resolved.
func TestAlertChargerCabinet(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	chg := r.connect(t, "ys-a-chg")
	chg.send(t, schemas.ChannelTelemetry, chargerTelem(true, false, slot(1, "fault", 30)))
	smoke := r.alert(t, "ys-a", "ys-a-chg", RuleSmoke)
	mains := r.alert(t, "ys-a", "ys-a-chg", RuleMainsLost)
	fault := r.alert(t, "ys-a", "ys-a-chg", RuleSlotFault)
	if smoke.Severity != SeverityCritical || mains.Severity != SeverityMajor ||
		fault.Severity != SeverityMinor || fault.Subject != "1" {
		t.Fatalf("%+v %+v %+v", smoke, mains, fault)
	}
	r.mosquittoPub(t, "ys-a-chg", schemas.ChannelEvent, eventJSON(schemas.EventMainsRestored, ""))
	r.resolved(t, mains.ID)
	chg = r.connect(t, "ys-a-chg") // mosquitto_pub took its session over
	chg.send(t, schemas.ChannelTelemetry, chargerTelem(false, true, slot(1, "empty", 30)))
	r.resolved(t, smoke.ID)
	r.resolved(t, fault.ID)
	chg.send(t, schemas.ChannelEvent, eventJSON(schemas.EventMainsLost, ""))
	if a := r.alert(t, "ys-a", "ys-a-chg", RuleMainsLost); a.ID != mains.ID {
		t.Fatalf("mains lost again within 5 minutes did not reopen: %+v", a)
	}
}

// TestAlertAED: not ready, cabinet opened from telemetry (never resolved by
// itself), pads expiring (warning, then major with a change notice), low
// battery and cabinet temperature.
func TestAlertAED(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	aed := r.connect(t, "ys-a-aed")
	// The rig's day is 2026-07-15 in Shanghai.
	aed.send(t, schemas.ChannelTelemetry, aedTelem(false, "pass", 15, "2026-08-10", false, -3))
	notReady := r.alert(t, "ys-a", "ys-a-aed", RuleAEDNotReady)
	pads := r.alert(t, "ys-a", "ys-a-aed", RuleAEDPads)
	bat := r.alert(t, "ys-a", "ys-a-aed", RuleAEDBattery)
	temp := r.alert(t, "ys-a", "ys-a-aed", RuleAEDCabinetTemp)
	if notReady.Severity != SeverityCritical || bat.Severity != SeverityMajor ||
		temp.Severity != SeverityMinor || pads.Severity != SeverityWarning ||
		!strings.Contains(pads.Summary, "2026-08-10, in 26 days") {
		t.Fatalf("%+v\n%+v\n%+v\n%+v", notReady, pads, bat, temp)
	}
	aed.send(t, schemas.ChannelTelemetry, aedTelem(true, "pass", 90, "2026-07-20", true, 20))
	opened := r.alert(t, "ys-a", "ys-a-aed", RuleAEDOpened)
	if !strings.Contains(opened.Summary, "AED taken: possible cardiac arrest at station ys-a (Chengguan)") {
		t.Fatalf("opened %+v", opened)
	}
	r.resolved(t, notReady.ID)
	r.resolved(t, bat.ID)
	r.resolved(t, temp.ID)
	if a, _ := r.alerts.Get(pads.ID); a.Severity != SeverityMajor || a.State != AlertFiring {
		t.Fatalf("pads within a week: %+v", a)
	}
	if n := len(r.notes.of(NoticeAlertChanged, RuleAEDPads)); n != 1 {
		t.Fatalf("%d change notices for the pads", n)
	}
	aed.send(t, schemas.ChannelTelemetry, aedTelem(true, "pass", 90, "2026-07-10", true, 20))
	r.settle(t)
	if a, _ := r.alerts.Get(pads.ID); !strings.Contains(a.Summary, "expired on 2026-07-10") {
		t.Fatalf("pads expired: %+v", a)
	}
	aed.send(t, schemas.ChannelTelemetry, aedTelem(true, "fail", 90, "2028-01-01", false, 20))
	r.resolved(t, pads.ID)
	if a := r.alert(t, "ys-a", "ys-a-aed", RuleAEDNotReady); !strings.Contains(a.Summary, "self-test") {
		t.Fatalf("self-test failure %+v", a)
	}
	r.settle(t)
	if a, _ := r.alerts.Get(opened.ID); a.State != AlertFiring {
		t.Fatalf("an AED put back resolved its alert by itself: %+v", a)
	}
}

// TestAlertClockSkew: a device whose clock is more than 5 minutes off
// warns; a right clock resolves it.
func TestAlertClockSkew(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	lock := r.connect(t, "ys-b-lock")
	telem := func(ts time.Time) string {
		return fmt.Sprintf(`{"door":"closed","bolt":"locked","mode":"normal","ts":%d}`, ts.UnixMilli())
	}
	lock.send(t, schemas.ChannelTelemetry, telem(r.clock.Now().Add(-4*time.Minute)))
	r.none(t, "ys-b", "ys-b-lock", RuleClockSkew)
	lock.send(t, schemas.ChannelTelemetry, telem(r.clock.Now().Add(-7*time.Minute)))
	a := r.alert(t, "ys-b", "ys-b-lock", RuleClockSkew)
	if a.Severity != SeverityWarning || !strings.Contains(a.Summary, "-7m0s") {
		t.Fatalf("alert %+v", a)
	}
	lock.send(t, schemas.ChannelTelemetry, telem(r.clock.Now()))
	r.resolved(t, a.ID)
}

// TestAlertAllowlistStale: a door terminal whose allow-list is more than
// the stale limit behind raises lock.allowlist_stale at the next check;
// catching up resolves it.
func TestAlertAllowlistStale(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	v := int64(3)
	r.stale.set(TerminalStatus{Device: "ys-a-lock", Station: "ys-a", Reported: &v,
		BehindSince: r.clock.Now().Add(-2 * time.Hour), Stale: true})
	r.alerts.Sweep()
	a := r.alert(t, "ys-a", "ys-a-lock", RuleAllowlistStale)
	if a.Severity != SeverityMinor || !strings.Contains(a.Summary, "version 3") {
		t.Fatalf("alert %+v", a)
	}
	r.clock.Add(time.Minute)
	r.stale.set()
	r.alerts.Sweep()
	r.resolved(t, a.ID)
}

// TestAlertFaultEvents: fault events of an AC and of other kinds, raised
// and cleared by code.
func TestAlertFaultEvents(t *testing.T) {
	r := newAlertRig(t, alertRigOptions{})
	aed := r.connect(t, "ys-a-aed")
	aed.send(t, schemas.ChannelEvent, eventJSON(schemas.EventFaultRaised, "PAD-ERR"))
	a := r.alert(t, "ys-a", "ys-a-aed", RuleDeviceFault)
	if a.Subject != "PAD-ERR" || a.Severity != SeverityMinor {
		t.Fatalf("alert %+v", a)
	}
	aed.send(t, schemas.ChannelEvent, eventJSON(schemas.EventFaultCleared, "OTHER"))
	r.settle(t)
	if got, _ := r.alerts.Get(a.ID); got.State != AlertFiring {
		t.Fatalf("another code cleared it: %+v", got)
	}
	aed.send(t, schemas.ChannelEvent, eventJSON(schemas.EventFaultCleared, "PAD-ERR"))
	r.resolved(t, a.ID)
	ac := r.connect(t, "ys-a-ac")
	ac.send(t, schemas.ChannelEvent, eventJSON(schemas.EventFaultRaised, "E1"))
	b := r.alert(t, "ys-a", "ys-a-ac", RuleACFault)
	ac.send(t, schemas.ChannelEvent, eventJSON(schemas.EventFaultCleared, "E1"))
	r.resolved(t, b.ID)
}
