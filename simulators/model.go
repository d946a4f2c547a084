package simulators

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/waystation/waystation/schemas"
)

// model is the state and physics of one kind of device. The device calls
// its methods with its lock held, from one goroutine at a time.
type model interface {
	// step advances the state by dt to now and returns what happened.
	step(now time.Time, dt time.Duration) []schemas.Event

	// encode returns the telemetry payload of the current state.
	encode(meta schemas.Meta) ([]byte, error)

	// command applies a command other than device.reboot and reports what
	// happened; the error, if any, is what the device answers.
	command(now time.Time, c schemas.Command) ([]schemas.Event, error)

	// clear removes every injected fault and reports what was cleared.
	clear(now time.Time) []schemas.Event

	// nextWake returns the next time something happens that the device
	// should publish at once (a visitor at the door, a self-test); zero
	// when nothing is due.
	nextWake() time.Time
}

// powered is a model that a power cut changes: powerLost is called when
// the power goes and powerBack when it returns, each after the model has
// stepped to that moment.
type powered interface {
	powerLost(now time.Time)
	powerBack(now time.Time)
}

// env is what every model draws on: its random source, the weather and
// the station's visitors.
type env struct {
	rng        *rand.Rand
	climate    climate
	crowd      *crowd
	sensorSeed uint64 // for sensor noise, apart from rng
}

// newModel returns the model of kind k in a plausible state for now.
func newModel(k schemas.Kind, e *env, now time.Time) model {
	switch k {
	case schemas.KindAC:
		return newAC(e, now)
	case schemas.KindLock:
		return newLock(e, now)
	case schemas.KindCharger:
		return newCharger(e, now)
	case schemas.KindAED:
		return newAED(e, now)
	}
	return nil
}

// noise is a normal draw with standard deviation sd.
func (e *env) noise(sd float64) float64 {
	return e.rng.NormFloat64() * sd
}

// sensorNoise is a sensor's reading error at t: normal with standard
// deviation sd, drawn from the seed, the device and the instant rather than
// from the model's stream, so reading a sensor never changes the physics.
func (e *env) sensorNoise(t time.Time, sd float64) float64 {
	h := e.sensorSeed ^ mix(uint64(t.UnixNano()))
	u1, u2 := unit(h), unit(h+1)
	return sd * math.Sqrt(-2*math.Log(1-u1)) * math.Cos(2*math.Pi*u2)
}

// between is a uniform draw in [lo, hi).
func (e *env) between(lo, hi float64) float64 {
	return lo + e.rng.Float64()*(hi-lo)
}

// chance reports whether an event of rate perHour happens within dt.
func (e *env) chance(perHour float64, dt time.Duration) bool {
	return e.rng.Float64() < 1-math.Exp(-perHour*dt.Hours())
}

// ErrArgs is wrapped by the answer to a command whose arguments are wrong,
// and returned by a fault injection given a bad value.
var ErrArgs = errors.New("bad args")

// argBool reads an optional boolean argument.
func argBool(args map[string]any, name string) (v, ok bool, err error) {
	raw, ok := args[name]
	if !ok {
		return false, false, nil
	}
	v, isBool := raw.(bool)
	if !isBool {
		return false, false, fmt.Errorf("%w: %s must be a boolean", ErrArgs, name)
	}
	return v, true, nil
}

// argNumber reads an optional number argument within [lo, hi].
func argNumber(args map[string]any, name string, lo, hi float64) (v float64, ok bool, err error) {
	raw, ok := args[name]
	if !ok {
		return 0, false, nil
	}
	v, isNum := raw.(float64)
	if !isNum || math.IsNaN(v) || v < lo || v > hi {
		return 0, false, fmt.Errorf("%w: %s must be a number from %g to %g", ErrArgs, name, lo, hi)
	}
	return v, true, nil
}

// argInt reads an optional whole-number argument within [lo, hi].
func argInt(args map[string]any, name string, lo, hi int) (v int, ok bool, err error) {
	f, ok, err := argNumber(args, name, float64(lo), float64(hi))
	if err != nil || !ok {
		return 0, ok, err
	}
	if f != math.Trunc(f) {
		return 0, false, fmt.Errorf("%w: %s must be a whole number", ErrArgs, name)
	}
	return int(f), true, nil
}

// argString reads an optional string argument that must be one of allowed.
func argString(args map[string]any, name string, allowed ...string) (v string, ok bool, err error) {
	raw, ok := args[name]
	if !ok {
		return "", false, nil
	}
	v, isString := raw.(string)
	if isString {
		for _, a := range allowed {
			if v == a {
				return v, true, nil
			}
		}
	}
	return "", false, fmt.Errorf("%w: %s must be one of %v", ErrArgs, name, allowed)
}

// ptr returns a pointer to a copy of v, for the optional telemetry fields.
func ptr[T any](v T) *T { return &v }

// event builds an event stamped with the device clock.
func event(now time.Time, typ string) schemas.Event {
	return schemas.Event{Meta: schemas.Meta{TS: now.UnixMilli()}, Type: typ}
}
