package simulators

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/waystation/waystation/schemas"
)

// Door terminal states and figures.
const (
	doorOpen       = schemas.DoorOpen
	doorClosed     = schemas.DoorClosed
	boltLocked     = schemas.BoltLocked
	boltUnlocked   = schemas.BoltUnlocked
	boltJammed     = schemas.BoltJammed
	lockNormal     = schemas.LockNormal
	lockOpen       = schemas.LockOpen
	lockLockdown   = schemas.LockLockdown
	codeBoltJammed = "bolt_jammed"

	lockDrainPctPerDay = 0.4   // the backup battery's self-discharge and standby
	unlockDrainPct     = 0.002 // each throw of the bolt
	minBatteryPct      = 1.0
	defaultUnlockS     = 5
	maxUnlockS         = schemas.MaxUnlockS
	maxOccupancy       = 40
	passMinS           = 3 // a person holds the door open this long
	passMaxS           = 9
	heldAfter          = 5 * time.Minute // a door open longer is reported held, as the platform judges it
	forcedOpenFor      = 20 * time.Second
	proppedMin         = 2 * time.Minute // a door propped open in the heat
	proppedMax         = 6 * time.Minute
	proppedPerHour     = 0.02 // on hot afternoons
	proppedFromC       = 32.0
	forcedPerHour      = 1.0 / 2000 // somebody forces the door
	jamPerHour         = 1.0 / (24 * 120)
	jamMinFor          = 10 * time.Minute // a random jam frees itself after a while
	jamMaxFor          = 3 * time.Hour
	failuresWindow     = 5 * time.Minute // this many denials within it is reported
	failuresReported   = 3
	detailPlatform     = "platform"
	detailOffline      = "allow-list: the platform did not answer"
	detailLockdown     = "lockdown"
	detailJammed       = "bolt jammed"
	reasonNotListed    = "not on the allow-list"
)

// Answers of a door terminal that cannot do what it is asked.
var (
	errJammed   = errors.New("bolt jammed")
	errLockdown = errors.New("terminal in lockdown")
)

// lockModel is a door terminal. The station's crowd comes to the door;
// each visitor's credential goes to the platform as an access request, and
// the terminal lets the visitor in when the platform says so, or, when no
// answer comes in time, when its own allow-list does. Visitors rest and
// leave through the door again. Now and then someone props the door open in
// the heat, forces it, or the bolt jams; the backup battery drains.
type lockModel struct {
	env *env

	door       string
	bolt       string
	mode       string
	batteryPct float64
	tamper     bool

	inside      []time.Time // when each visitor let in will leave
	unlockUntil time.Time   // a grant or lock.unlock holds the bolt open until then
	doorUntil   time.Time   // the door stands open until then
	doorSince   time.Time   // the door opened then
	forced      bool        // the door stands open without the bolt drawn
	heldSaid    bool        // door_held was reported for this opening
	jamEnds     time.Time   // a random jam frees itself then; zero while a scenario's holds

	dark     bool // no power: nobody is let in, nothing is seen
	nextReq  uint64
	attempts []attempt       // access requests to send
	cache    map[string]bool // tokens the platform answered: granted or not

	// The platform's allow-list for the station, when it sent one: the
	// SHA-256 of each admitted token, and the methods the station takes.
	list        map[string]bool
	listVersion int64
	listMethods []string
	denials     []time.Time // recent denials, for too_many_failures
	last        time.Time   // the crowd's arrivals are taken since then
}

// attempt is a visitor at the door waiting for a decision.
type attempt struct {
	req   schemas.AccessRequest
	visit visit
}

// newLock returns a terminal at rest, with a battery somewhere in its life.
func newLock(e *env, now time.Time) *lockModel {
	return &lockModel{
		env:        e,
		door:       doorClosed,
		bolt:       boltLocked,
		mode:       lockNormal,
		batteryPct: e.between(55, 100),
		cache:      map[string]bool{},
		last:       now,
	}
}

func (m *lockModel) step(now time.Time, dt time.Duration) []schemas.Event {
	m.batteryPct = clamp(m.batteryPct-lockDrainPctPerDay*dt.Hours()/24, minBatteryPct, 100)
	var out []schemas.Event

	// Visitors leave through the door; egress needs no credential.
	kept := m.inside[:0]
	for _, leaves := range m.inside {
		if leaves.After(now) {
			kept = append(kept, leaves)
			continue
		}
		m.openDoor(leaves, m.passTime())
	}
	m.inside = kept

	// Visitors arrive and present a credential.
	if !m.dark {
		for _, v := range m.env.crowd.arrivals(m.last, now) {
			out = append(out, m.arrive(v)...)
		}
	}
	m.last = now

	if !m.dark {
		out = append(out, m.accidents(now, dt)...)
	}
	out = append(out, m.settle(now)...)
	return out
}

// arrive handles a visitor at the door: in open mode they walk in; in
// lockdown or with the bolt jammed the terminal turns them away itself;
// otherwise their credential goes to the platform.
func (m *lockModel) arrive(v visit) []schemas.Event {
	switch {
	case m.mode == lockOpen:
		m.admit(v.at, v, 0)
		return nil
	case m.mode == lockLockdown:
		return []schemas.Event{m.deny(v.at, v.method, detailLockdown)}
	case m.bolt == boltJammed:
		return []schemas.Event{m.deny(v.at, v.method, detailJammed)}
	}
	m.nextReq++
	m.attempts = append(m.attempts, attempt{visit: v, req: schemas.AccessRequest{
		ID:     fmt.Sprintf("r%x-%d", uint32(m.env.crowd.seed), m.nextReq),
		Method: v.method,
		Token:  m.env.crowd.token(v.worker),
	}})
	return nil
}

// takeAttempts hands over the access requests to send.
func (m *lockModel) takeAttempts() []attempt {
	a := m.attempts
	m.attempts = nil
	return a
}

// decide lets a waiting visitor in or not. answered says whether the
// platform answered; when it did not, the terminal's cache of the
// platform's past answers decides, then its allow-list.
func (m *lockModel) decide(now time.Time, a attempt, answered, granted bool, unlockS int,
	reason string) []schemas.Event {
	token := a.req.Token
	var detail string
	if answered {
		m.cache[token] = granted
		detail = detailPlatform
		if !granted && reason != "" {
			detail += ": " + reason
		}
	} else {
		granted = m.offlineDecision(a)
		detail = detailOffline
		if !granted {
			detail = reasonNotListed + " (the platform did not answer)"
		}
	}
	switch {
	case m.mode == lockLockdown:
		granted, detail = false, detailLockdown
	case m.bolt == boltJammed:
		granted, detail = false, detailJammed
	}
	if !granted {
		return append([]schemas.Event{m.deny(now, a.req.Method, detail)}, m.settle(now)...)
	}

	e := event(now, schemas.EventAccessGranted)
	e.Method, e.Detail = a.req.Method, detail
	m.admit(now, a.visit, unlockS)
	return append([]schemas.Event{e}, m.settle(now)...)
}

// offlineDecision is what the terminal decides alone: from the platform's
// allow-list when it holds one, else from the answers the platform gave
// before and the workers enrolled at the terminal.
func (m *lockModel) offlineDecision(a attempt) bool {
	if m.listVersion > 0 {
		sum := sha256.Sum256([]byte(a.req.Token))
		methodOK := len(m.listMethods) == 0 || slices.Contains(m.listMethods, a.req.Method)
		return methodOK && m.list[hex.EncodeToString(sum[:])]
	}
	if known, ok := m.cache[a.req.Token]; ok {
		return known
	}
	return a.visit.worker < m.env.crowd.enrolled
}

// setList replaces the terminal's allow-list with the platform's.
func (m *lockModel) setList(l schemas.AccessList) {
	m.list = make(map[string]bool, len(l.Entries))
	for _, e := range l.Entries {
		m.list[e] = true
	}
	m.listVersion, m.listMethods = l.Version, l.Methods
}

// admit unlocks the door for a visitor, who walks in and stays.
func (m *lockModel) admit(now time.Time, v visit, unlockS int) {
	if unlockS <= 0 {
		unlockS = defaultUnlockS
	}
	if m.mode != lockOpen {
		m.unlockUntil = laterOf(m.unlockUntil, now.Add(time.Duration(unlockS)*time.Second))
		m.batteryPct = clamp(m.batteryPct-unlockDrainPct, minBatteryPct, 100)
	}
	m.openDoor(now, m.passTime())
	if len(m.inside) < maxOccupancy {
		m.inside = append(m.inside, now.Add(v.stay))
	}
}

// deny turns a visitor away, reporting a burst of denials once.
func (m *lockModel) deny(now time.Time, method, detail string) schemas.Event {
	e := event(now, schemas.EventAccessDenied)
	e.Method, e.Detail = method, clipError(detail)

	recent := m.denials[:0]
	for _, t := range m.denials {
		if now.Sub(t) < failuresWindow {
			recent = append(recent, t)
		}
	}
	m.denials = append(recent, now)
	return e
}

// failureBurst reports too_many_failures when the denials just reached
// the threshold.
func (m *lockModel) failureBurst(now time.Time) []schemas.Event {
	if len(m.denials) != failuresReported {
		return nil
	}
	m.denials = append(m.denials, now) // past the threshold: said once per burst
	return []schemas.Event{event(now, schemas.EventTooManyFailures)}
}

// passTime is how long one person holds the door.
func (m *lockModel) passTime() time.Duration {
	return time.Duration(passMinS+m.env.rng.IntN(passMaxS-passMinS+1)) * time.Second
}

// openDoor opens the door from at for d.
func (m *lockModel) openDoor(at time.Time, d time.Duration) {
	if m.door == doorClosed {
		m.heldSaid, m.doorSince = false, at
	}
	m.doorUntil = laterOf(m.doorUntil, at.Add(d))
	m.door = doorOpen
}

// accidents are what happens now and then without anyone asking: a door
// propped open in the heat, a door forced, a jam.
func (m *lockModel) accidents(now time.Time, dt time.Duration) []schemas.Event {
	var out []schemas.Event
	if !m.jamEnds.IsZero() && !now.Before(m.jamEnds) {
		out = append(out, m.clear(now)...)
	}
	hot := m.env.climate.outdoorC(now) > proppedFromC
	switch {
	case hot && m.door == doorClosed && m.env.chance(proppedPerHour, dt):
		d := proppedMin + time.Duration(m.env.rng.Int64N(int64(proppedMax-proppedMin)))
		m.unlockUntil = laterOf(m.unlockUntil, now.Add(d))
		m.openDoor(now, d)
	case m.door == doorClosed && m.env.chance(forcedPerHour, dt):
		out = append(out, m.force(now)...)
	case m.bolt != boltJammed && m.env.chance(jamPerHour, dt):
		out = append(out, m.jam(now)...)
		m.jamEnds = now.Add(jamMinFor + time.Duration(m.env.rng.Int64N(int64(jamMaxFor-jamMinFor))))
	}
	return out
}

// settle closes a door whose time is up, reports a door held open, and
// sets the bolt from the mode, the door and any unlock.
func (m *lockModel) settle(now time.Time) []schemas.Event {
	var out []schemas.Event
	if m.door == doorOpen && !now.Before(m.doorUntil) {
		m.door, m.forced = doorClosed, false
	}
	if m.door == doorOpen && !m.heldSaid && now.Sub(m.doorSince) >= heldAfter {
		m.heldSaid = true
		out = append(out, event(now, schemas.EventDoorHeld))
	}
	out = append(out, m.failureBurst(now)...)

	switch {
	case m.bolt == boltJammed:
	case m.forced:
		m.bolt = boltLocked // forced past a locked bolt
	case m.mode == lockOpen, now.Before(m.unlockUntil):
		m.bolt = boltUnlocked
	case m.door == doorOpen:
		m.bolt = boltUnlocked // someone leaving holds the latch
	default:
		m.bolt = boltLocked
	}
	return out
}

func (m *lockModel) encode(meta schemas.Meta) ([]byte, error) {
	s := schemas.LockState{
		Door:       m.door,
		Bolt:       m.bolt,
		Mode:       m.mode,
		BatteryPct: ptr(round1(m.batteryPct)),
		Tamper:     m.tamper,
		Occupancy:  ptr(len(m.inside)),
	}
	if m.listVersion > 0 {
		s.AllowlistVersion = ptr(m.listVersion)
	}
	return json.Marshal(struct {
		schemas.Meta
		*schemas.LockState
	}{meta, &s})
}

// command applies lock.unlock (optional seconds, 1-600, default 5) and
// lock.mode (mode: normal, open or lockdown).
func (m *lockModel) command(now time.Time, c schemas.Command) ([]schemas.Event, error) {
	switch c.Name {
	case schemas.CmdLockUnlock:
		secs, ok, err := argInt(c.Args, "seconds", 1, maxUnlockS)
		if err != nil {
			return nil, err
		}
		if !ok {
			secs = defaultUnlockS
		}
		if m.bolt == boltJammed {
			return nil, errJammed
		}
		if m.mode == lockLockdown {
			return nil, errLockdown
		}
		m.unlockUntil = now.Add(time.Duration(secs) * time.Second)
		m.batteryPct = clamp(m.batteryPct-unlockDrainPct, minBatteryPct, 100)

	case schemas.CmdLockMode:
		mode, ok, err := argString(c.Args, "mode", lockNormal, lockOpen, lockLockdown)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: mode is required", ErrArgs)
		}
		if m.bolt == boltJammed && mode == lockOpen {
			return nil, errJammed
		}
		m.mode = mode
		if mode == lockLockdown {
			m.unlockUntil = time.Time{}
		}

	default:
		return nil, fmt.Errorf("%w: %s is not a lock command", ErrKind, c.Name)
	}
	return m.settle(now), nil
}

// jam seizes the bolt where it is, until clear.
func (m *lockModel) jam(now time.Time) []schemas.Event {
	if m.bolt == boltJammed {
		return nil
	}
	m.bolt = boltJammed
	m.jamEnds = time.Time{}
	e := event(now, schemas.EventFaultRaised)
	e.Code = codeBoltJammed
	return []schemas.Event{e}
}

// force opens the door against the locked bolt.
func (m *lockModel) force(now time.Time) []schemas.Event {
	m.openDoor(now, forcedOpenFor)
	m.forced = m.bolt != boltUnlocked
	m.settle(now)
	return []schemas.Event{event(now, schemas.EventDoorForced)}
}

// openFromInside opens the door as someone leaving does.
func (m *lockModel) openFromInside(now time.Time) []schemas.Event {
	m.openDoor(now, m.passTime())
	return m.settle(now)
}

// setBattery sets the backup battery's charge.
func (m *lockModel) setBattery(pct float64) { m.batteryPct = clamp(pct, 0, 100) }

func (m *lockModel) clear(now time.Time) []schemas.Event {
	if m.bolt != boltJammed {
		return nil
	}
	m.bolt = boltLocked
	m.jamEnds = time.Time{}
	m.settle(now)
	e := event(now, schemas.EventFaultCleared)
	e.Code = codeBoltJammed
	return []schemas.Event{e}
}

// nextWake is the next time the door changes: a visitor arrives or
// leaves, the door swings shut, the bolt relocks.
func (m *lockModel) nextWake() time.Time {
	next := m.env.crowd.next(m.last)
	for _, leaves := range m.inside {
		next = earliest(next, leaves)
	}
	if m.door == doorOpen {
		next = earliest(next, m.doorUntil)
		if !m.heldSaid {
			next = earliest(next, m.doorSince.Add(heldAfter))
		}
	}
	if m.unlockUntil.After(m.last) {
		next = earliest(next, m.unlockUntil)
	}
	if !m.jamEnds.IsZero() {
		next = earliest(next, m.jamEnds)
	}
	return next
}

// powerLost and powerBack: a dark terminal lets nobody in and knows
// nothing of who came meanwhile; the people inside have left by the time it
// boots.
func (m *lockModel) powerLost(time.Time) { m.dark = true }

func (m *lockModel) powerBack(now time.Time) {
	m.dark = false
	m.attempts = nil
	m.inside = nil
	m.door, m.forced, m.unlockUntil = doorClosed, false, time.Time{}
	m.last = now
	m.settle(now)
}

// earliest is the earlier of two times, a zero one counting as never.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
