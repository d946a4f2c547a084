package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// finish ends a command in state (acknowledged, failed or expired): it
// leaves its device's queue, is counted and told. c.mu is held.
func (c *Commands) finish(rec *CommandRecord, state string, now time.Time) actions {
	rec.State = state
	rec.Done = now
	c.unqueue(rec)
	delete(c.durable, rec.ID)
	if !rec.open() {
		delete(c.recs, rec.ID)
	}
	c.dirty[rec.ID] = rec
	c.outcomes.WithLabelValues(rec.Name, state).Inc()
	typ := NoticeCommandAcknowledged
	switch state {
	case CommandFailed:
		typ = NoticeCommandFailed
	case CommandExpired:
		typ = NoticeCommandExpired
		c.log.Info("command expired", "command", rec.ID, "device", rec.Device, "name", rec.Name,
			"attempts", rec.Attempts)
	}
	return actions{notices: []Notice{c.notice(rec, typ, now)}}
}

// finishFailed ends a command as failed without an answer from the device.
func (c *Commands) finishFailed(rec *CommandRecord, reason string, now time.Time) actions {
	rec.Error = reason
	return c.finish(rec, CommandFailed, now)
}

// notice builds the notice of a change of rec.
func (c *Commands) notice(rec *CommandRecord, typ string, now time.Time) Notice {
	return Notice{Type: typ, Key: rec.ID + ":" + typ, Station: rec.Station, At: now,
		Data: rec.clone()}
}

// Observe takes the ingest's observations: answers to commands, and
// devices coming back online (which get their unanswered command at once).
func (c *Commands) Observe(obs Observation) {
	switch {
	case obs.Result != nil:
		c.answer(obs.Device, *obs.Result)
	case obs.Presence == devices.PresenceOnline:
		c.kick(obs.Device.ID, true)
	case obs.Telem != nil:
		// Telemetry may bring a device back online without a status.
		c.kick(obs.Device.ID, false)
	}
}

// kick sends a device's unanswered command if it may go now.
func (c *Commands) kick(device string, force bool) {
	c.mu.Lock()
	if _, ok := c.queues[device]; !ok {
		c.mu.Unlock()
		return
	}
	a := c.pump(device, force, c.o.Now())
	c.mu.Unlock()
	c.act(a)
}

// answer records a device's answer to a command.
func (c *Commands) answer(d devices.Device, res schemas.CommandResult) {
	now := c.o.Now()
	c.mu.Lock()
	rec, ok := c.recs[res.ID]
	if !ok || rec.finished() {
		c.mu.Unlock()
		if !ok {
			c.lateAnswer(d, res, now)
		}
		return
	}
	if rec.Device != d.ID {
		c.mu.Unlock()
		c.log.Warn("answer from another device ignored", "command", res.ID, "device", d.ID,
			"sent_to", rec.Device)
		return
	}
	var a actions
	ok2 := res.OK
	rec.OK, rec.Error = &ok2, res.Error
	if !rec.sentMono.IsZero() {
		rt := time.Since(rec.sentMono)
		rec.RoundTripMS = math.Round(float64(rt.Microseconds())) / 1000
		c.roundTrip.WithLabelValues(rec.Name).Observe(rt.Seconds())
	}
	if res.OK {
		c.supersede(rec, now)
		c.startEffect(rec, now)
		a = c.finish(rec, CommandAcknowledged, now)
	} else {
		a = c.finish(rec, CommandFailed, now)
		c.log.Info("command failed", "command", rec.ID, "device", d.ID, "name", rec.Name,
			"error", res.Error)
	}
	a.add(c.pump(d.ID, false, now))
	c.mu.Unlock()
	c.poke()
	c.act(a)
}

// lateAnswer records an answer to a command already finished and no
// longer in memory: an answer to an expired command is kept on it; a
// repeated answer (to a retry) changes nothing.
func (c *Commands) lateAnswer(d devices.Device, res schemas.CommandResult, now time.Time) {
	rec, err := c.Get(res.ID)
	if err != nil || rec.Device != d.ID || rec.State != CommandExpired || rec.LateAnswer {
		return
	}
	ok := res.OK
	rec.OK, rec.Error, rec.LateAnswer = &ok, res.Error, true
	c.log.Warn("device answered a command after it expired", "command", rec.ID, "device", d.ID,
		"ok", res.OK, "expired_at", rec.ExpiresAt, "now", now)
	c.mu.Lock()
	if _, busy := c.dirty[rec.ID]; !busy {
		c.dirty[rec.ID] = &rec
	}
	c.mu.Unlock()
	c.poke()
}

// supersede ends the effect checks of earlier ac.set commands to the same
// device: a later one changed what they asked for. c.mu is held.
func (c *Commands) supersede(rec *CommandRecord, now time.Time) {
	if rec.Name != schemas.CmdACSet {
		return
	}
	if o := c.checking[rec.Device]; o != nil && o != rec && o.Seq < rec.Seq {
		c.endEffect(o, EffectSuperseded, "command "+rec.ID+" changed the AC first", now)
	}
}

// acView is what an effect check reads of an AC's twin.
type acView struct {
	state schemas.ACState
	at    time.Time
	ok    bool
}

func (c *Commands) acState(device string) acView {
	tw, ok := c.o.Twins.Get(device)
	if !ok || len(tw.State) == 0 {
		return acView{}
	}
	var st schemas.ACState
	if err := json.Unmarshal(tw.State, &st); err != nil {
		return acView{}
	}
	return acView{state: st, at: tw.StateAt, ok: true}
}

// startEffect arms the effect check of an acknowledged ac.set that leaves
// the AC on and cooling, heating or in auto toward a setpoint. c.mu is
// held.
func (c *Commands) startEffect(rec *CommandRecord, now time.Time) {
	if rec.Name != schemas.CmdACSet {
		return
	}
	v := c.acState(rec.Device)
	cmd := schemas.Command{Args: rec.Args}
	power, hasPower := cmd.ArgBool("power")
	mode, hasMode := cmd.ArgString("mode")
	setpoint, hasSetpoint := cmd.ArgFloat("setpoint_c")
	if !hasPower {
		power = v.ok && v.state.Power
	}
	if !hasMode && v.ok {
		mode = v.state.Mode
	}
	if !hasSetpoint && v.ok {
		setpoint, hasSetpoint = v.state.SetpointC, true
	}
	if !power || !hasSetpoint || (mode != schemas.ModeCool && mode != schemas.ModeHeat &&
		mode != schemas.ModeAuto) {
		return
	}
	rec.Effect = EffectChecking
	c.checking[rec.Device] = rec
	rec.EffectDue = now.Add(c.o.EffectWithin)
	rec.EffectMode = mode
	rec.EffectTarget = &setpoint
	if v.ok {
		from := v.state.RoomC
		rec.EffectFromC = &from
	}
}

// checkEffect judges an ac.set whose check is due. c.mu is held.
func (c *Commands) checkEffect(rec *CommandRecord, now time.Time) actions {
	v := c.acState(rec.Device)
	target := *rec.EffectTarget
	switch {
	case !v.ok || v.at.Before(rec.Done):
		c.endEffect(rec, EffectUnknown, "no telemetry from the AC since it acknowledged", now)
		return actions{}
	case v.state.Fault != "":
		c.endEffect(rec, EffectNoEffect, fmt.Sprintf("the AC reports fault %s; room %.1f °C, "+
			"setpoint %.1f °C", v.state.Fault, v.state.RoomC, target), now)
	case !v.state.Power:
		c.endEffect(rec, EffectSuperseded, "the AC is off", now)
		return actions{}
	case math.Abs(v.state.RoomC-target) <= reachedWithinC:
		c.endEffect(rec, EffectReached, fmt.Sprintf("room %.1f °C, setpoint %.1f °C",
			v.state.RoomC, target), now)
		return actions{}
	case rec.EffectFromC == nil:
		c.endEffect(rec, EffectUnknown, "no room temperature when the AC acknowledged", now)
		return actions{}
	default:
		from, to := *rec.EffectFromC, v.state.RoomC
		moved := math.Abs(from-target) - math.Abs(to-target) // toward the setpoint
		detail := fmt.Sprintf("room %.1f → %.1f °C in %v, setpoint %.1f °C", from, to,
			c.o.EffectWithin, target)
		if moved >= c.o.EffectMinC {
			c.endEffect(rec, EffectMoving, detail, now)
			return actions{}
		}
		c.endEffect(rec, EffectNoEffect, detail, now)
	}
	c.log.Warn("AC command without effect", "command", rec.ID, "device", rec.Device,
		"detail", rec.EffectDetail)
	return actions{notices: []Notice{c.notice(rec, NoticeCommandNoEffect, now)}}
}

// endEffect records the outcome of an effect check. c.mu is held.
func (c *Commands) endEffect(rec *CommandRecord, effect, detail string, now time.Time) {
	rec.Effect, rec.EffectDetail = effect, detail
	if c.checking[rec.Device] == rec {
		delete(c.checking, rec.Device)
	}
	c.effects.WithLabelValues(effect).Inc()
	c.dirty[rec.ID] = rec
	if !rec.open() {
		delete(c.recs, rec.ID)
	}
}

// poke wakes the writer.
func (c *Commands) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run writes the log, expires, retries and checks effects until ctx ends.
// Issue waits for Run to write its record, so Run must be running.
func (c *Commands) Run(ctx context.Context) error {
	defer c.stop.Do(func() { close(c.stopped) })
	tick := time.NewTicker(c.o.Every)
	defer tick.Stop()
	sweepEvery := time.Hour
	lastSweep := time.Time{}
	c.log.Info("commands running", "open", c.openCount())
	for {
		select {
		case <-ctx.Done():
			c.flush()
			return nil
		case <-c.wake:
			c.flush()
		case <-tick.C:
			c.tick()
			c.flush()
			if now := time.Now(); now.Sub(lastSweep) >= sweepEvery {
				lastSweep = now
				if n, err := c.sweep(c.o.Now()); err != nil {
					c.log.Error("drop old commands", "err", err)
				} else if n > 0 {
					c.log.Info("old commands dropped", "count", n, "retention", c.o.Retention)
				}
			}
		}
	}
}

func (c *Commands) openCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

// tick expires and retries commands and checks due effects.
func (c *Commands) tick() {
	now := c.o.Now()
	var a actions
	c.mu.Lock()
	for device := range c.queues {
		a.add(c.pump(device, false, now))
	}
	for _, rec := range c.checking {
		if !now.Before(rec.EffectDue) {
			a.add(c.checkEffect(rec, now))
		}
	}
	c.mu.Unlock()
	c.act(a)
}

// flush writes every changed record in one transaction and answers the
// Issue calls waiting for theirs.
func (c *Commands) flush() {
	c.mu.Lock()
	if len(c.dirty) == 0 {
		c.mu.Unlock()
		return
	}
	type row struct {
		id   string
		v    []byte
		open bool
	}
	rows := make([]row, 0, len(c.dirty))
	var encErr error
	for id, rec := range c.dirty {
		v, err := json.Marshal(rec)
		if err != nil {
			encErr = errors.Join(encErr, fmt.Errorf("encode command %s: %w", id, err))
			continue
		}
		rows = append(rows, row{id: id, v: v, open: rec.open()})
	}
	batch := c.dirty
	c.dirty = map[string]*CommandRecord{}
	waiters := map[string]chan error{}
	for id := range batch {
		if w, ok := c.waiters[id]; ok {
			waiters[id] = w
			delete(c.waiters, id)
		}
	}
	seq := c.seq
	c.mu.Unlock()

	err := c.o.DB.Update(func(tx *bolt.Tx) error {
		all, open := tx.Bucket(bucketCommands), tx.Bucket(bucketCommandsOpen)
		if all.Sequence() < seq {
			if err := all.SetSequence(seq); err != nil {
				return err
			}
		}
		for _, r := range rows {
			if err := all.Put([]byte(r.id), r.v); err != nil {
				return err
			}
			var err error
			if r.open {
				err = open.Put([]byte(r.id), []byte{1})
			} else {
				err = open.Delete([]byte(r.id))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	err = errors.Join(encErr, err)
	if err != nil {
		c.writeErrs.Inc()
		c.log.Error("write commands", "err", err)
		// Keep the changes for the next flush, but for new commands: their
		// callers are told and drop them.
		c.mu.Lock()
		for id, rec := range batch {
			if _, waiting := waiters[id]; waiting {
				continue
			}
			if _, newer := c.dirty[id]; !newer {
				c.dirty[id] = rec
			}
		}
		c.mu.Unlock()
	}
	for _, w := range waiters {
		w <- err
	}
}

// sweep drops finished commands created before the retention. Ids begin
// with their creation time, so the walk stops at the first younger one.
func (c *Commands) sweep(now time.Time) (int, error) {
	cutoff := newID(now.Add(-c.o.Retention), 0)
	n := 0
	err := c.o.DB.Update(func(tx *bolt.Tx) error {
		all, open := tx.Bucket(bucketCommands), tx.Bucket(bucketCommandsOpen)
		var old [][]byte
		cur := all.Cursor()
		for k, _ := cur.First(); k != nil && string(k) < cutoff; k, _ = cur.Next() {
			if open.Get(k) == nil {
				old = append(old, append([]byte(nil), k...))
			}
		}
		for _, k := range old {
			if err := all.Delete(k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	return n, err
}
