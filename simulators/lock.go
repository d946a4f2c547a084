package simulators

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/waystation/waystation/schemas"
)

// Door terminal states and figures.
const (
	doorOpen       = "open"
	doorClosed     = "closed"
	boltLocked     = "locked"
	boltUnlocked   = "unlocked"
	boltJammed     = "jammed"
	lockNormal     = "normal"
	lockOpen       = "open"
	lockLockdown   = "lockdown"
	codeBoltJammed = "bolt_jammed"

	lockDrainPctPerDay = 0.4
	defaultUnlockS     = 5
	maxUnlockS         = 600
	stayHours          = 0.5 // a worker rests about half an hour
	maxOccupancy       = 12
	doorSeenOpen       = 0.4 // chance a sample catches the door open after someone passed
)

// Answers of a door terminal that cannot do what it is asked.
var (
	errJammed   = errors.New("bolt jammed")
	errLockdown = errors.New("terminal in lockdown")
)

// lockModel is a door terminal: workers arrive through the day (most at
// shift changes), rest for a while and leave; the door is closed and the
// bolt locked between them; the backup battery drains slowly.
type lockModel struct {
	env *env

	door        string
	bolt        string
	mode        string
	batteryPct  float64
	occupancy   int
	unlockUntil time.Time // a remote unlock holds the bolt open until then
}

// newLock returns a terminal at rest, with a battery somewhere in its life.
func newLock(e *env, _ time.Time) *lockModel {
	return &lockModel{
		env:        e,
		door:       doorClosed,
		bolt:       boltLocked,
		mode:       lockNormal,
		batteryPct: e.between(55, 100),
	}
}

func (m *lockModel) step(now time.Time, dt time.Duration) []schemas.Event {
	m.batteryPct = clamp(m.batteryPct-lockDrainPctPerDay*dt.Hours()/24, 1, 100)

	left := 0
	for i := 0; i < m.occupancy; i++ {
		if m.env.chance(1/stayHours, dt) {
			left++
		}
	}
	m.occupancy -= left

	var out []schemas.Event
	arrived := false
	if m.mode != lockLockdown && m.bolt != boltJammed &&
		m.env.chance(visitsPerHour(now.In(m.env.climate.loc).Hour()), dt) {
		arrived = true
		m.occupancy = min(m.occupancy+1, maxOccupancy)
		e := event(now, schemas.EventAccessGranted)
		e.Method = m.method()
		out = append(out, e)
	}

	m.door = doorClosed
	if (arrived || left > 0) && m.env.rng.Float64() < doorSeenOpen {
		m.door = doorOpen
	}
	m.settleBolt(now)
	return out
}

// visitsPerHour is how many workers arrive at a station in an hour of the
// day: sweepers before dawn and at the midday and afternoon handovers,
// riders and drivers at any hour.
func visitsPerHour(hour int) float64 {
	switch {
	case hour >= 4 && hour < 7, hour >= 11 && hour < 13, hour >= 16 && hour < 18:
		return 4
	case hour >= 7 && hour < 21:
		return 2
	}
	return 0.7
}

// method picks how a worker identifies: mostly by face, then card, then QR.
func (m *lockModel) method() string {
	switch r := m.env.rng.Float64(); {
	case r < 0.5:
		return schemas.MethodFace
	case r < 0.8:
		return schemas.MethodNFC
	}
	return schemas.MethodQR
}

// settleBolt sets the bolt from the mode, the door and a remote unlock.
func (m *lockModel) settleBolt(now time.Time) {
	switch {
	case m.bolt == boltJammed:
	case m.mode == lockOpen, m.door == doorOpen, now.Before(m.unlockUntil):
		m.bolt = boltUnlocked
	default:
		m.bolt = boltLocked
	}
}

func (m *lockModel) encode(meta schemas.Meta) ([]byte, error) {
	s := schemas.LockState{
		Door:       m.door,
		Bolt:       m.bolt,
		Mode:       m.mode,
		BatteryPct: ptr(round1(m.batteryPct)),
		Occupancy:  ptr(m.occupancy),
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
	m.settleBolt(now)
	return nil, nil
}

// jam seizes the bolt where it is.
func (m *lockModel) jam(now time.Time) []schemas.Event {
	if m.bolt == boltJammed {
		return nil
	}
	m.bolt = boltJammed
	e := event(now, schemas.EventFaultRaised)
	e.Code = codeBoltJammed
	return []schemas.Event{e}
}

func (m *lockModel) clear(now time.Time) []schemas.Event {
	if m.bolt != boltJammed {
		return nil
	}
	m.bolt = boltLocked
	m.settleBolt(now)
	e := event(now, schemas.EventFaultCleared)
	e.Code = codeBoltJammed
	return []schemas.Event{e}
}
