package controller

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/waystation/waystation/schemas"
)

// handAC is an AC the test drives by hand: it answers every command ok
// and reports the room temperature the test gives.
type handAC struct {
	r   *cmdRig
	dev *rawDevice
}

func newHandAC(t *testing.T, r *cmdRig) *handAC {
	t.Helper()
	h := &handAC{r: r, dev: connectRaw(t, r, "ys-b-ac", true)}
	h.dev.publish(t, "ys-b", schemas.ChannelStatus, true, `{"online":true,"kind":"ac","conn":"h1"}`)
	r.waitOnline(t, "ys-b-ac", true)
	return h
}

// report publishes telemetry and waits for the twin to have it.
func (h *handAC) report(t *testing.T, power bool, mode string, setpoint, room float64, fault string) {
	t.Helper()
	payload := fmt.Sprintf(`{"power":%t,"mode":%q,"setpoint_c":%g,"room_c":%g,"fault":%q}`,
		power, mode, setpoint, room, fault)
	h.dev.publish(t, "ys-b", schemas.ChannelTelemetry, false, payload)
	at := h.r.clock.Now()
	waitUntil(t, 5*time.Second, "telemetry in the twin", func() bool {
		tw, _ := h.r.twins.Get("ys-b-ac")
		return tw.StateAt.Equal(at) && h.r.acState(t, "ys-b-ac").RoomC == room
	})
}

// set issues an ac.set and answers it ok, after reporting room (unless it
// is 0).
func (h *handAC) set(t *testing.T, args map[string]any, room float64) CommandRecord {
	t.Helper()
	id := h.r.issue(t, "ys-b-ac", schemas.CmdACSet, args, time.Minute)
	c := h.dev.next(t)
	if c.ID != id {
		t.Fatalf("got %+v, want %s", c, id)
	}
	st := h.r.acState(t, "ys-b-ac")
	power, mode, setpoint := st.Power, st.Mode, st.SetpointC
	if v, ok := c.ArgBool("power"); ok {
		power = v
	}
	if v, ok := c.ArgString("mode"); ok {
		mode = v
	}
	if v, ok := c.ArgFloat("setpoint_c"); ok {
		setpoint = v
	}
	if room > 0 {
		h.report(t, power, mode, setpoint, room, "")
	}
	h.dev.publish(t, "ys-b", schemas.ChannelCmdResult, false, fmt.Sprintf(`{"id":%q,"ok":true}`, id))
	return h.r.waitState(t, id, CommandAcknowledged)
}

func TestACCommandEffect(t *testing.T) {
	r := newCmdRig(t, func(o *CommandsOptions) { o.EffectWithin = 10 * time.Minute })
	h := newHandAC(t, r)
	h.report(t, false, "cool", 26, 31, "")

	waitEffect := func(id, want string) CommandRecord {
		t.Helper()
		var rec CommandRecord
		waitUntil(t, 5*time.Second, id+" effect "+want, func() bool {
			rec, _ = r.cmds().Get(id)
			return rec.Effect == want
		})
		return rec
	}
	for _, c := range []struct {
		name     string
		args     map[string]any
		from, to float64
		fault    string
		want     string
	}{
		{"cooling", map[string]any{"power": true, "mode": "cool", "setpoint_c": 26}, 31, 29.5, "",
			EffectMoving},
		{"stuck", map[string]any{"power": true, "mode": "cool", "setpoint_c": 26}, 31, 31.2, "",
			EffectNoEffect},
		{"a little", map[string]any{"setpoint_c": 25}, 31, 30.7, "", EffectNoEffect},
		{"there", map[string]any{"power": true, "mode": "heat", "setpoint_c": 18}, 12, 17.2, "",
			EffectReached},
		{"heating the wrong way", map[string]any{"mode": "heat", "setpoint_c": 20}, 15, 14, "",
			EffectNoEffect},
		{"fault", map[string]any{"power": true, "mode": "cool", "setpoint_c": 24}, 30, 26, "E4",
			EffectNoEffect},
	} {
		rec := h.set(t, c.args, c.from)
		if rec.Effect != EffectChecking || *rec.EffectFromC != c.from {
			t.Fatalf("%s: %+v", c.name, rec)
		}
		r.clock.Add(9 * time.Minute)
		st := r.acState(t, "ys-b-ac")
		h.report(t, st.Power, st.Mode, st.SetpointC, c.to, c.fault)
		time.Sleep(30 * time.Millisecond) // ticks before the check is due change nothing
		if got, _ := r.cmds().Get(rec.ID); got.Effect != EffectChecking {
			t.Fatalf("%s: checked early: %+v", c.name, got)
		}
		r.clock.Add(time.Minute)
		got := waitEffect(rec.ID, c.want)
		if got.EffectDetail == "" {
			t.Errorf("%s: no detail", c.name)
		}
		types := r.notes.types(rec.ID)
		if noEffect := slices.Contains(types, NoticeCommandNoEffect); noEffect != (c.want == EffectNoEffect) {
			t.Errorf("%s: notices %v", c.name, types)
		}
		r.clock.Add(time.Minute)
	}
	if n := testutil.ToFloat64(r.cmds().effects.WithLabelValues(EffectNoEffect)); n != 4 {
		t.Errorf("no_effect counted %v", n)
	}

	// Switching off, or fan only, asks for no check; a later ac.set ends
	// the check of an earlier one.
	h.report(t, true, "cool", 26, 30, "")
	if rec := h.set(t, map[string]any{"power": false}, 30); rec.Effect != "" {
		t.Fatalf("power off: %+v", rec)
	}
	if rec := h.set(t, map[string]any{"power": true, "mode": "fan"}, 30); rec.Effect != "" {
		t.Fatalf("fan: %+v", rec)
	}
	first := h.set(t, map[string]any{"power": true, "mode": "cool", "setpoint_c": 26}, 30)
	r.clock.Add(time.Second)
	second := h.set(t, map[string]any{"setpoint_c": 27}, 0)
	waitEffect(first.ID, EffectSuperseded)
	if second.Effect != EffectChecking {
		t.Fatalf("second %+v", second)
	}

	// No telemetry since the acknowledgement: unknown.
	r.clock.Add(10 * time.Minute)
	waitEffect(second.ID, EffectUnknown)

	// A check survives a restart.
	third := h.set(t, map[string]any{"setpoint_c": 26}, 30)
	r.stop()
	r.start(t)
	r.clock.Add(9 * time.Minute)
	h.report(t, true, "cool", 26, 28, "")
	r.clock.Add(time.Minute)
	waitEffect(third.ID, EffectMoving)
}

// A simulated AC on a hot July noon cools its room: the check sees it
// move; with a fault its compressor stops and the check says so.
func TestACCommandEffectOnSimulatedAC(t *testing.T) {
	r := newCmdRig(t, func(o *CommandsOptions) { o.EffectWithin = 10 * time.Minute })
	d := r.sim(t, "ys-a-ac", nil)
	run := func(want string) CommandRecord {
		t.Helper()
		id := r.issue(t, "ys-a-ac", schemas.CmdACSet,
			map[string]any{"power": true, "mode": "cool", "setpoint_c": 18}, time.Minute)
		rec := r.waitState(t, id, CommandAcknowledged)
		if rec.Effect != EffectChecking {
			t.Fatalf("%+v", rec)
		}
		r.clock.Add(9*time.Minute + 30*time.Second)
		d.ReportNow()
		at := r.clock.Now()
		waitUntil(t, 5*time.Second, "fresh telemetry", func() bool {
			tw, _ := r.twins.Get("ys-a-ac")
			return !tw.StateAt.Before(at)
		})
		r.clock.Add(30 * time.Second)
		waitUntil(t, 5*time.Second, "effect "+want, func() bool {
			rec, _ = r.cmds().Get(id)
			return rec.Effect == want
		})
		return rec
	}
	rec := run(EffectMoving)
	t.Logf("working AC: %s", rec.EffectDetail)

	if err := d.SetFault("E1"); err != nil {
		t.Fatal(err)
	}
	rec = run(EffectNoEffect)
	t.Logf("faulty AC: %s", rec.EffectDetail)
}
