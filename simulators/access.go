package simulators

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/waystation/waystation/schemas"
)

// waitingAccess is an access request sent and not yet answered.
type waitingAccess struct {
	attempt  attempt
	deadline time.Time // wall clock: the platform answers in wall time
}

// accessTimeout is how long a terminal waits for the platform: the
// option's wall time, but never longer than a visitor would stand at the
// door in simulated time.
func (d *Device) accessTimeout() time.Duration {
	return max(time.Millisecond, min(d.opts.AccessTimeout, d.clock.Wall(maxAccessWaitSim)))
}

// askAccess sends the access requests of visitors who just came to the
// door. A visit the terminal only learns of late (it was catching up after
// a lost link) or a request that cannot be sent is decided at once from
// the terminal's own allow-list, as the real terminal would have done.
func (d *Device) askAccess(ctx context.Context, s *session) {
	d.mu.Lock()
	m, ok := d.model.(*lockModel)
	if !ok {
		d.mu.Unlock()
		return
	}
	now := d.opts.Now()
	var fresh []attempt
	for _, a := range m.takeAttempts() {
		if now.Sub(a.visit.at) > staleAttempt {
			d.queueLocked(m.decide(a.visit.at, a, false, false, 0, "")...)
			continue
		}
		fresh = append(fresh, a)
	}
	d.mu.Unlock()

	for i, a := range fresh {
		req := a.req
		req.Meta = d.meta()
		b, err := json.Marshal(req)
		if err == nil {
			err = d.send(ctx, s, schemas.ChannelAccessReq, false, b)
		}
		if err != nil {
			d.log.Debug("access request not sent; deciding locally", "err", err)
			d.mu.Lock()
			for _, rest := range fresh[i:] {
				d.queueLocked(m.decide(d.opts.Now(), rest, false, false, 0, "")...)
			}
			d.mu.Unlock()
			return
		}
		s.waiting[req.ID] = waitingAccess{attempt: a, deadline: time.Now().Add(d.accessTimeout())}
	}
}

// answer handles the platform's answer to an access request: the door
// opens, or the visitor is turned away, and the terminal says so at once.
// An answer to no request waiting (late, or not ours) is ignored.
func (d *Device) answer(ctx context.Context, s *session, payload []byte) error {
	res, err := schemas.DecodeAccessResponse(payload)
	if err != nil {
		d.log.Debug("access answer refused", "err", err)
		return nil
	}
	w, ok := s.waiting[res.ID]
	if !ok {
		d.log.Debug("access answer to no waiting request", "request", res.ID)
		return nil
	}
	delete(s.waiting, res.ID)

	d.mu.Lock()
	now := d.opts.Now()
	d.advance(now)
	m := d.model.(*lockModel)
	d.queueLocked(m.decide(now, w.attempt, true, res.Granted, res.UnlockS, res.Reason)...)
	d.mu.Unlock()
	return d.report(ctx, s)
}

// takeList keeps the platform's allow-list for offline decisions and
// reports the version now held. A list that does not decode is ignored,
// and the one held stays.
func (d *Device) takeList(ctx context.Context, s *session, payload []byte) error {
	l, err := schemas.DecodeAccessList(payload)
	if err != nil {
		d.log.Warn("allow-list refused", "err", err)
		return nil
	}
	d.mu.Lock()
	m := d.model.(*lockModel)
	changed := l.Version != m.listVersion
	m.setList(l)
	d.mu.Unlock()
	d.log.Debug("allow-list", "version", l.Version, "entries", len(l.Entries))
	if !changed {
		return nil
	}
	return d.report(ctx, s)
}

// expireWaiting decides, from the terminal's allow-list, the requests the
// platform has not answered in time.
func (d *Device) expireWaiting(ctx context.Context, s *session) error {
	wall := time.Now()
	d.mu.Lock()
	now := d.opts.Now()
	d.advance(now)
	expired := 0
	for id, w := range s.waiting {
		if wall.Before(w.deadline) {
			continue
		}
		delete(s.waiting, id)
		expired++
		d.queueLocked(d.model.(*lockModel).decide(now, w.attempt, false, false, 0, "")...)
	}
	d.mu.Unlock()
	if expired == 0 {
		return nil
	}
	return d.report(ctx, s)
}

// abandonWaiting decides locally what is still waiting when a session
// ends; the events go out on the next connection.
func (d *Device) abandonWaiting(s *session) {
	if len(s.waiting) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.opts.Now()
	for id, w := range s.waiting {
		delete(s.waiting, id)
		d.queueLocked(d.model.(*lockModel).decide(now, w.attempt, false, false, 0, "")...)
	}
}

// counters are a device's connection and traffic counts, for a fleet's
// progress and summary.
type counters struct {
	attempts atomic.Uint64 // connection attempts
	connects atomic.Uint64 // successful connections
	failures atomic.Uint64 // failed connection attempts
	drops    atomic.Uint64 // connections lost
	sent     atomic.Uint64 // messages the broker acknowledged
	failing  atomic.Bool   // the last attempt failed
	executed atomic.Uint64 // commands carried out
	repeated atomic.Uint64 // repeated command ids answered again, not carried out
	expired  atomic.Uint64 // commands dropped past their expiry
}

// DeviceStats counts what a device did since it was built.
type DeviceStats struct {
	Attempts uint64 // connection attempts
	Connects uint64 // successful connections
	Failures uint64 // failed connection attempts
	Drops    uint64 // connections lost (power cuts and link drops included)
	Sent     uint64 // messages published and acknowledged by the broker
	Failing  bool   // the last connection attempt failed
	// Executed counts command ids answered for the first time (carried
	// out, or refused as invalid); Repeated counts command
	// ids answered again without being carried out; Expired counts
	// commands dropped because their expiry had passed.
	Executed, Repeated, Expired uint64
}

// Stats returns the device's counts.
func (d *Device) Stats() DeviceStats {
	return DeviceStats{
		Attempts: d.stats.attempts.Load(),
		Connects: d.stats.connects.Load(),
		Failures: d.stats.failures.Load(),
		Drops:    d.stats.drops.Load(),
		Sent:     d.stats.sent.Load(),
		Failing:  d.stats.failing.Load(),
		Executed: d.stats.executed.Load(),
		Repeated: d.stats.repeated.Load(),
		Expired:  d.stats.expired.Load(),
	}
}

// String is a one-line summary, for logs.
func (s DeviceStats) String() string {
	return fmt.Sprintf("%d connects, %d failures, %d drops, %d sent", s.Connects, s.Failures,
		s.Drops, s.Sent)
}
