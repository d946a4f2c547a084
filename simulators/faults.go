package simulators

import (
	"fmt"
	"time"

	"github.com/waystation/waystation/schemas"
)

// Fault injection. Each method changes the device's state at once, queues
// the events a real device would send, and asks the running session to
// publish them and fresh telemetry now. A device that is not connected
// keeps the events (up to a limit) and sends them after it reconnects.
// A method meant for another kind returns an error wrapping ErrKind.

// SetFault raises a vendor fault code on an air conditioner, or clears the
// fault when code is empty. A faulty unit keeps its fan running but its
// compressor stops, so the room drifts toward the outdoor temperature.
func (d *Device) SetFault(code string) error {
	if !validCode(code) {
		return fmt.Errorf("%w: fault code %q", ErrArgs, code)
	}
	return injectAs(d, "SetFault", func(m *acModel, now time.Time) ([]schemas.Event, error) {
		return m.setFault(now, code), nil
	})
}

// Jam seizes a door terminal's bolt: telemetry shows it jammed, nobody gets
// in, and lock.unlock is refused until Clear.
func (d *Device) Jam() error {
	return injectAs(d, "Jam", func(m *lockModel, now time.Time) ([]schemas.Event, error) {
		return m.jam(now), nil
	})
}

// OpenCabinet opens an AED cabinet, as someone taking the defibrillator
// out would.
func (d *Device) OpenCabinet() error {
	return injectAs(d, "OpenCabinet", func(m *aedModel, now time.Time) ([]schemas.Event, error) {
		return m.setCabinet(now, true), nil
	})
}

// CloseCabinet closes an AED cabinet.
func (d *Device) CloseCabinet() error {
	return injectAs(d, "CloseCabinet", func(m *aedModel, now time.Time) ([]schemas.Event, error) {
		return m.setCabinet(now, false), nil
	})
}

// FailSelfTest makes an AED fail a self-test now, and every nightly one
// after it until Clear; the unit is then not ready.
func (d *Device) FailSelfTest() error {
	return injectAs(d, "FailSelfTest", func(m *aedModel, now time.Time) ([]schemas.Event, error) {
		return m.failSelfTest(now), nil
	})
}

// Overheat makes slot (1-based) of a charger cabinet overheat: the cabinet
// cuts it at about 60 °C and reports it in fault. The slot cools over the
// next half hour; charger.slot with on=true revives it once it is below
// 45 °C, and Clear revives it at once.
func (d *Device) Overheat(slot int) error {
	return injectAs(d, "Overheat", func(m *chargerModel, now time.Time) ([]schemas.Event, error) {
		return m.overheat(now, slot)
	})
}

// Runaway sets the battery in slot (1-based) of a charger cabinet into
// thermal runaway: it heats itself, the cabinet cuts the bay at about
// 60 °C (fault thermal_runaway), and the cell goes on heating until it
// smokes. Only Clear ends it, taking the battery away.
func (d *Device) Runaway(slot int) error {
	return injectAs(d, "Runaway", func(m *chargerModel, now time.Time) ([]schemas.Event, error) {
		return m.runaway(now, slot)
	})
}

// SetMains cuts (false) or restores (true) a charger cabinet's mains: it
// keeps reporting on its backup battery, mains false, and charges nothing.
func (d *Device) SetMains(on bool) error {
	return injectAs(d, "SetMains", func(m *chargerModel, now time.Time) ([]schemas.Event, error) {
		return m.setMains(now, on), nil
	})
}

// ForceDoor forces a door terminal's door open against the bolt.
func (d *Device) ForceDoor() error {
	return injectAs(d, "ForceDoor", func(m *lockModel, now time.Time) ([]schemas.Event, error) {
		return m.force(now), nil
	})
}

// OpenDoor opens a door terminal's door from inside, as someone leaving
// does; it closes again after a few seconds.
func (d *Device) OpenDoor() error {
	return injectAs(d, "OpenDoor", func(m *lockModel, now time.Time) ([]schemas.Event, error) {
		return m.openFromInside(now), nil
	})
}

// SetBattery sets the charge of a door terminal's backup battery or an
// AED's battery, percent (0-100). An AED below 20 % fails its next
// self-test.
func (d *Device) SetBattery(pct float64) error {
	if pct < 0 || pct > 100 || pct != pct {
		return fmt.Errorf("%w: battery %v%%", ErrArgs, pct)
	}
	return d.inject(func(now time.Time) ([]schemas.Event, error) {
		switch m := d.model.(type) {
		case *lockModel:
			m.setBattery(pct)
		case *aedModel:
			m.setBattery(pct)
		default:
			return nil, d.wrongKind("SetBattery")
		}
		return nil, nil
	})
}

// SetPadsExpire sets the expiry date of an AED's pads; pads past their
// date fail the next self-test.
func (d *Device) SetPadsExpire(date time.Time) error {
	return injectAs(d, "SetPadsExpire", func(m *aedModel, _ time.Time) ([]schemas.Event, error) {
		m.setPadsExpire(date)
		return nil, nil
	})
}

// Clear removes every injected fault of the device: the AC fault code, a
// jammed bolt, an open AED cabinet and failing self-tests, overheated
// slots, a runaway battery (taken away), smoke, a lost mains.
func (d *Device) Clear() error {
	return d.inject(func(now time.Time) ([]schemas.Event, error) {
		return d.model.clear(now), nil
	})
}

// PowerCut cuts the device's power: its network connection dies without a
// goodbye, so the broker publishes its last will; it stays dark for dark
// (simulated time), then boots and reconnects. While dark its model goes
// on: a room without its AC warms, a cabinet charges nothing. It returns
// ErrOffline when the device is not connected.
func (d *Device) PowerCut(dark time.Duration) error {
	return d.sever(true, true, dark)
}

// LinkDown breaks the device's network link for down (simulated time): the
// broker publishes the last will, the device keeps working and keeps its
// events, and reconnects when the link is back, without a boot. It returns
// ErrOffline when the device is not connected.
func (d *Device) LinkDown(down time.Duration) error {
	return d.sever(true, false, down)
}

// DropConnection breaks the device's network connection without a goodbye,
// like a flaky mobile link: the broker publishes the last will and the
// device reconnects after a jittered backoff. It returns ErrOffline when the
// device is not connected.
func (d *Device) DropConnection() error {
	return d.sever(false, false, 0)
}

// inject runs a fault on the model with the state brought up to now.
func (d *Device) inject(f func(now time.Time) ([]schemas.Event, error)) error {
	if d.err != nil {
		return d.err
	}
	d.mu.Lock()
	now := d.opts.Now()
	d.advance(now)
	evs, err := f(now)
	d.queueLocked(evs...)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	d.poke()
	return nil
}

// injectAt runs a scenario's action at its time at: the model is brought
// up to at when it is behind, and the events are stamped at, so the timing
// does not depend on how promptly the scenario's timer fired.
func (d *Device) injectAt(at time.Time, f func(now time.Time) ([]schemas.Event, error)) error {
	if d.err != nil {
		return d.err
	}
	d.mu.Lock()
	if at.After(d.last) {
		d.advance(at)
	}
	evs, err := f(at)
	d.queueLocked(evs...)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	d.poke()
	return nil
}

func (d *Device) sever(cut, power bool, dark time.Duration) error {
	d.mu.Lock()
	s := d.current
	if s == nil || s.raw == nil {
		d.mu.Unlock()
		return fmt.Errorf("device %s: %w", d.spec.Device, ErrOffline)
	}
	s.cut, s.power, s.darkFor = cut, power, dark
	c := s.raw
	d.mu.Unlock()
	c.sever()
	return nil
}

func (d *Device) wrongKind(fault string) error {
	return fmt.Errorf("%s on %s %s: %w", fault, d.spec.Kind, d.spec.Device, ErrKind)
}

// validCode reports whether code is a fault code the contract allows:
// up to 32 of A-Z a-z 0-9 _ . -, or empty.
func validCode(code string) bool {
	if len(code) > 32 {
		return false
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// injectAs injects f when the device's model is an M (the kind the fault
// belongs to), and fails wrapping ErrKind, naming method, when it is not.
func injectAs[M any](d *Device, method string,
	f func(m M, now time.Time) ([]schemas.Event, error)) error {
	return d.inject(func(now time.Time) ([]schemas.Event, error) {
		m, ok := d.model.(M)
		if !ok {
			return nil, d.wrongKind(method)
		}
		return f(m, now)
	})
}
