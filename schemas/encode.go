package schemas

import (
	"encoding/json"
	"math"
	"strconv"
)

// The telemetry states are encoded on every message kept in the history,
// so they have encoders of their own that write the bytes json.Marshal
// writes (the tests hold them to it), without reflection and into the
// caller's buffer. They expect finite numbers, as the decoders produce;
// AppendState refuses the others as json.Marshal does.

// AppendState appends the JSON of the telemetry's state to b: the bytes of
// json.Marshal(t.State()), "null" when there is none. It fails, returning
// b unchanged, only for a number that is not finite.
func (t Telemetry) AppendState(b []byte) ([]byte, error) {
	n := len(b)
	var ok bool
	switch t.Kind {
	case KindAC:
		b, ok = t.AC.appendJSON(b)
	case KindLock:
		b, ok = t.Lock.appendJSON(b)
	case KindCharger:
		b, ok = t.Charger.appendJSON(b)
	case KindAED:
		b, ok = t.AED.appendJSON(b)
	default:
		return append(b, "null"...), nil
	}
	if !ok {
		return b[:n], &json.UnsupportedValueError{Str: "a number that is not finite"}
	}
	return b, nil
}

// enc appends the members of an object, keeping whether every number was
// finite.
type enc struct {
	b     []byte
	ok    bool
	first bool
}

func (e *enc) key(k string) {
	if e.first {
		e.b = append(e.b, '{')
		e.first = false
	} else {
		e.b = append(e.b, ',')
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

func (e *enc) end() ([]byte, bool) {
	if e.first {
		e.b = append(e.b, '{')
	}
	return append(e.b, '}'), e.ok
}

func (e *enc) bool(k string, v bool) {
	e.key(k)
	e.b = strconv.AppendBool(e.b, v)
}

func (e *enc) str(k, v string) {
	e.key(k)
	e.b = appendString(e.b, v)
}

func (e *enc) int(k string, v int64) {
	e.key(k)
	e.b = strconv.AppendInt(e.b, v, 10)
}

func (e *enc) float(k string, v float64) {
	e.key(k)
	var ok bool
	e.b, ok = appendFloat(e.b, v)
	e.ok = e.ok && ok
}

func (e *enc) optFloat(k string, v *float64) {
	if v != nil {
		e.float(k, *v)
	}
}

func newEnc(b []byte) enc { return enc{b: b, ok: true, first: true} }

func (s *ACState) appendJSON(b []byte) ([]byte, bool) {
	if s == nil {
		return append(b, "null"...), true
	}
	e := newEnc(b)
	e.bool("power", s.Power)
	e.str("mode", s.Mode)
	e.float("setpoint_c", s.SetpointC)
	e.float("room_c", s.RoomC)
	e.optFloat("outdoor_c", s.OutdoorC)
	e.optFloat("humidity_pct", s.HumidityPct)
	e.optFloat("power_w", s.PowerW)
	if s.Fault != "" {
		e.str("fault", s.Fault)
	}
	return e.end()
}

func (s *LockState) appendJSON(b []byte) ([]byte, bool) {
	if s == nil {
		return append(b, "null"...), true
	}
	e := newEnc(b)
	e.str("door", s.Door)
	e.str("bolt", s.Bolt)
	e.str("mode", s.Mode)
	e.optFloat("battery_pct", s.BatteryPct)
	if s.Tamper {
		e.bool("tamper", true)
	}
	if s.Occupancy != nil {
		e.int("occupancy", int64(*s.Occupancy))
	}
	if s.AllowlistVersion != nil {
		e.int("allowlist_version", *s.AllowlistVersion)
	}
	return e.end()
}

func (s *ChargerState) appendJSON(b []byte) ([]byte, bool) {
	if s == nil {
		return append(b, "null"...), true
	}
	e := newEnc(b)
	e.key("slots")
	if s.Slots == nil {
		e.b = append(e.b, "null"...)
	} else {
		e.b = append(e.b, '[')
		for i := range s.Slots {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			sl := &s.Slots[i]
			se := enc{b: e.b, ok: e.ok, first: true}
			se.int("slot", int64(sl.Slot))
			se.str("state", sl.State)
			se.optFloat("soc_pct", sl.SocPct)
			se.optFloat("temp_c", sl.TempC)
			e.b, e.ok = se.end()
		}
		e.b = append(e.b, ']')
	}
	e.optFloat("cabinet_c", s.CabinetC)
	e.bool("smoke", s.Smoke)
	e.bool("mains", s.Mains)
	return e.end()
}

func (s *AEDState) appendJSON(b []byte) ([]byte, bool) {
	if s == nil {
		return append(b, "null"...), true
	}
	e := newEnc(b)
	e.bool("ready", s.Ready)
	e.str("self_test", s.SelfTest)
	if s.SelfTestAt != 0 {
		e.int("self_test_at", s.SelfTestAt)
	}
	e.float("battery_pct", s.BatteryPct)
	e.str("pads_expire", s.PadsExpire)
	e.bool("cabinet_open", s.CabinetOpen)
	e.optFloat("cabinet_c", s.CabinetC)
	return e.end()
}

// appendFloat appends f as encoding/json writes a float64; false for NaN
// and the infinities, which it refuses.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	if b, ok := appendShortDecimal(b, f); ok {
		return b, true
	}
	// encoding/json's floatEncoder: ES6 number formatting, the shortest
	// representation, in exponent form only for very small or large values.
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendShortDecimal appends f when it is a decimal of at most 4
// fractional digits below 1e9 in magnitude, as the readings of the
// contract are, and reports whether it did. It writes what
// strconv.AppendFloat(b, f, 'f', -1, 64) writes, the shortest decimal that
// reads back as f, a few times faster: below 1e9 two floats are closer
// than 1e-5, so at most one decimal of k fractional digits reads back as
// f, and the first k for which one does gives the fewest digits.
func appendShortDecimal(b []byte, f float64) ([]byte, bool) {
	if f == 0 || f >= 1e9 || f <= -1e9 {
		return b, false // -0 keeps its sign in strconv's form
	}
	for k := range 5 {
		p := pow10[k]
		m := math.Round(f * p)
		if m/p != f {
			continue
		}
		if m < 0 {
			b = append(b, '-')
			m = -m
		}
		n := uint64(m)
		if k == 0 {
			return strconv.AppendUint(b, n, 10), true
		}
		div := uint64(p)
		b = strconv.AppendUint(b, n/div, 10)
		b = append(b, '.')
		frac := n % div
		for d := div / 10; d > 0; d /= 10 {
			b = append(b, byte('0'+frac/d%10))
		}
		return b, true
	}
	return b, false
}

// appendString appends s quoted as encoding/json quotes it. The states'
// strings are enumerations and codes of plain ASCII, written as they are;
// anything else goes through encoding/json, which escapes it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
