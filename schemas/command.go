package schemas

import (
	"encoding/json"
	"math"
)

// Validate reports whether c, once encoded with json.Marshal, is a command
// payload the contract accepts; the platform checks every command with it
// before sending. The error is a *FieldError, as from DecodeCommand.
//
// Args may hold any Go value that encodes to the right JSON: an int or a
// float64 for a number, a bool, a string.
func (c Command) Validate() error {
	b, err := json.Marshal(c)
	if err != nil {
		return &FieldError{Field: "args", Reason: "cannot be encoded: " + err.Error()}
	}
	_, err = DecodeCommand(b)
	return err
}

// ArgBool returns the boolean argument name, and whether there is one.
func (c Command) ArgBool(name string) (bool, bool) {
	v, ok := c.Args[name].(bool)
	return v, ok
}

// ArgString returns the string argument name, and whether there is one.
func (c Command) ArgString(name string) (string, bool) {
	v, ok := c.Args[name].(string)
	return v, ok
}

// ArgFloat returns the numeric argument name, and whether there is one. It
// reads the float64 that DecodeCommand stores as well as the Go integer
// and float types a caller may have put in Args.
func (c Command) ArgFloat(name string) (float64, bool) {
	switch v := c.Args[name].(type) {
	case float64:
		return v, true
	case float32:
		return float64(v), true
	case int:
		return float64(v), true
	case int8:
		return float64(v), true
	case int16:
		return float64(v), true
	case int32:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint:
		return float64(v), true
	case uint8:
		return float64(v), true
	case uint16:
		return float64(v), true
	case uint32:
		return float64(v), true
	case uint64:
		return float64(v), true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	}
	return 0, false
}

// ArgInt returns the integer argument name, and whether there is one: a
// number argument that holds an integer.
func (c Command) ArgInt(name string) (int, bool) {
	f, ok := c.ArgFloat(name)
	if !ok || f != math.Trunc(f) || math.Abs(f) > MaxSafeInt {
		return 0, false
	}
	return int(f), true
}
