package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every decoding error: the payload breaks the contract.
var ErrInvalid = errors.New("invalid message")

// FieldError says which field of a payload breaks the contract, and how.
type FieldError struct {
	Field  string // JSON path of the field, "" for the whole payload
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Is makes errors.Is(err, ErrInvalid) true for a *FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// MaxSafeInt bounds every integer of the contract (ts, seq, expires_at,
// self_test_at): 2^53-1, the largest integer a JSON parser that reads numbers
// as float64 keeps exactly.
const MaxSafeInt = 1<<53 - 1

// The decoders below accept exactly the payloads that the JSON Schema files
// in json/ accept; the tests hold them to it on every example and under
// fuzzing. Common to all of them:
//
//   - keys match exactly ("Power" is an unknown field, not power);
//   - unknown fields are ignored, whatever they hold;
//   - null is a wrong type for every known field: leave a field out instead;
//   - a number is an integer when its value is one, so 1.0 and 1e2 are
//     integers, and ranges are compared exactly, not after rounding;
//   - when a key repeats, the last one counts;
//   - on error the zero value is returned with a *FieldError naming the
//     first field found wrong.

// DecodeStatus decodes a status payload.
func DecodeStatus(b []byte) (Status, error) {
	var raw struct{ ts, seq, online, kind, firmware, model, interval, conn []byte }
	r := reader{index: -1}
	ok := r.object(b, func(key, val []byte) {
		switch string(key) {
		case "ts":
			raw.ts = val
		case "seq":
			raw.seq = val
		case "online":
			raw.online = val
		case "kind":
			raw.kind = val
		case "firmware":
			raw.firmware = val
		case "model":
			raw.model = val
		case "interval_s":
			raw.interval = val
		case "conn":
			raw.conn = val
		}
	})
	if !ok {
		return Status{}, r.err
	}

	var s Status
	s.Meta = r.meta(raw.ts, raw.seq)
	s.Online = r.boolean(raw.online, "online", true)
	s.Kind = Kind(r.enum(raw.kind, "kind", true, kindNames))
	s.Firmware = r.code(raw.firmware, "firmware", 0, 64, isPrintable)
	s.Model = r.code(raw.model, "model", 0, 64, isPrintable)
	s.IntervalS = int(r.integer(raw.interval, "interval_s", false, 1, 86400))
	s.Conn = r.code(raw.conn, "conn", 1, 64, isConnChar)
	if r.err != nil {
		return Status{}, r.err
	}
	return s, nil
}

// DecodeTelemetry decodes a telemetry payload of a device of kind k.
func DecodeTelemetry(k Kind, b []byte) (Telemetry, error) {
	var (
		t   Telemetry
		err error
	)
	switch k {
	case KindAC:
		t.AC, t.Meta, err = decodeAC(b)
	case KindLock:
		t.Lock, t.Meta, err = decodeLock(b)
	case KindCharger:
		t.Charger, t.Meta, err = decodeCharger(b)
	case KindAED:
		t.AED, t.Meta, err = decodeAED(b)
	default:
		return Telemetry{}, &FieldError{Reason: fmt.Sprintf("unknown kind %q", clip(string(k)))}
	}
	if err != nil {
		return Telemetry{}, err
	}
	t.Kind = k
	return t, nil
}

func decodeAC(b []byte) (*ACState, Meta, error) {
	var raw struct {
		ts, seq, power, mode, setpoint, room, outdoor, humidity, powerW, fault []byte
	}
	r := reader{index: -1}
	ok := r.object(b, func(key, val []byte) {
		switch string(key) {
		case "ts":
			raw.ts = val
		case "seq":
			raw.seq = val
		case "power":
			raw.power = val
		case "mode":
			raw.mode = val
		case "setpoint_c":
			raw.setpoint = val
		case "room_c":
			raw.room = val
		case "outdoor_c":
			raw.outdoor = val
		case "humidity_pct":
			raw.humidity = val
		case "power_w":
			raw.powerW = val
		case "fault":
			raw.fault = val
		}
	})
	if !ok {
		return nil, Meta{}, r.err
	}

	s := &ACState{}
	m := r.meta(raw.ts, raw.seq)
	s.Power = r.boolean(raw.power, "power", true)
	s.Mode = r.enum(raw.mode, "mode", true, acModes)
	s.SetpointC = r.number(raw.setpoint, "setpoint_c", true, MinSetpointC, MaxSetpointC)
	s.RoomC = r.number(raw.room, "room_c", true, -50, 70)
	s.OutdoorC = r.optNumber(raw.outdoor, "outdoor_c", -50, 70)
	s.HumidityPct = r.optNumber(raw.humidity, "humidity_pct", 0, 100)
	s.PowerW = r.optNumber(raw.powerW, "power_w", 0, 100000)
	s.Fault = r.code(raw.fault, "fault", 0, 32, isCodeChar)
	if r.err != nil {
		return nil, Meta{}, r.err
	}
	return s, m, nil
}

func decodeLock(b []byte) (*LockState, Meta, error) {
	var raw struct{ ts, seq, door, bolt, mode, battery, tamper, occupancy, allowlist []byte }
	r := reader{index: -1}
	ok := r.object(b, func(key, val []byte) {
		switch string(key) {
		case "ts":
			raw.ts = val
		case "seq":
			raw.seq = val
		case "door":
			raw.door = val
		case "bolt":
			raw.bolt = val
		case "mode":
			raw.mode = val
		case "battery_pct":
			raw.battery = val
		case "tamper":
			raw.tamper = val
		case "occupancy":
			raw.occupancy = val
		case "allowlist_version":
			raw.allowlist = val
		}
	})
	if !ok {
		return nil, Meta{}, r.err
	}

	s := &LockState{}
	m := r.meta(raw.ts, raw.seq)
	s.Door = r.enum(raw.door, "door", true, doorStates)
	s.Bolt = r.enum(raw.bolt, "bolt", true, boltStates)
	s.Mode = r.enum(raw.mode, "mode", true, lockModes)
	s.BatteryPct = r.optNumber(raw.battery, "battery_pct", 0, 100)
	s.Tamper = r.boolean(raw.tamper, "tamper", false)
	if raw.occupancy != nil {
		n := int(r.integer(raw.occupancy, "occupancy", true, 0, 1000))
		s.Occupancy = &n
	}
	if raw.allowlist != nil {
		v := r.integer(raw.allowlist, "allowlist_version", true, 0, MaxSafeInt)
		s.AllowlistVersion = &v
	}
	if r.err != nil {
		return nil, Meta{}, r.err
	}
	return s, m, nil
}

func decodeCharger(b []byte) (*ChargerState, Meta, error) {
	var raw struct{ ts, seq, slots, cabinet, smoke, mains []byte }
	r := reader{index: -1}
	ok := r.object(b, func(key, val []byte) {
		switch string(key) {
		case "ts":
			raw.ts = val
		case "seq":
			raw.seq = val
		case "slots":
			raw.slots = val
		case "cabinet_c":
			raw.cabinet = val
		case "smoke":
			raw.smoke = val
		case "mains":
			raw.mains = val
		}
	})
	if !ok {
		return nil, Meta{}, r.err
	}

	s := &ChargerState{}
	m := r.meta(raw.ts, raw.seq)
	s.Slots = r.slots(raw.slots)
	s.CabinetC = r.optNumber(raw.cabinet, "cabinet_c", -50, 150)
	s.Smoke = r.boolean(raw.smoke, "smoke", true)
	s.Mains = r.boolean(raw.mains, "mains", true)
	if r.err != nil {
		return nil, Meta{}, r.err
	}
	return s, m, nil
}

// slots decodes the slots array of a charger: 1 to MaxSlots bays, each
// number at most once.
func (r *reader) slots(b []byte) []Slot {
	if !r.present(b, "slots", true) || !r.isType(b, "slots", '[') {
		return nil
	}

	n := 0
	forElements(b, func(int, []byte) { n++ })
	if n < 1 || n > MaxSlots {
		r.fail("slots", fmt.Sprintf("want 1 to %d slots, got %d", MaxSlots, n))
		return nil
	}

	out := make([]Slot, n)
	var seen uint64 // bit i-1 set once slot i is seen
	r.parent = "slots"
	forElements(b, func(i int, el []byte) {
		r.index = i
		if !r.isType(el, "", '{') {
			return
		}
		var raw struct{ slot, state, soc, temp []byte }
		forMembers(el, func(key, val []byte) {
			switch string(key) {
			case "slot":
				raw.slot = val
			case "state":
				raw.state = val
			case "soc_pct":
				raw.soc = val
			case "temp_c":
				raw.temp = val
			}
		})
		s := &out[i]
		s.Slot = int(r.integer(raw.slot, "slot", true, 1, MaxSlots))
		s.State = r.enum(raw.state, "state", true, slotStates)
		s.SocPct = r.optNumber(raw.soc, "soc_pct", 0, 100)
		s.TempC = r.optNumber(raw.temp, "temp_c", -40, 150)
		if s.Slot >= 1 && s.Slot <= MaxSlots {
			bit := uint64(1) << (s.Slot - 1)
			if seen&bit != 0 {
				r.fail("slot", fmt.Sprintf("slot %d appears more than once", s.Slot))
			}
			seen |= bit
		}
	})
	r.parent, r.index = "", -1
	return out
}

func decodeAED(b []byte) (*AEDState, Meta, error) {
	var raw struct {
		ts, seq, ready, selfTest, selfTestAt, battery, pads, open, cabinet []byte
	}
	r := reader{index: -1}
	ok := r.object(b, func(key, val []byte) {
		switch string(key) {
		case "ts":
			raw.ts = val
		case "seq":
			raw.seq = val
		case "ready":
			raw.ready = val
		case "self_test":
			raw.selfTest = val
		case "self_test_at":
			raw.selfTestAt = val
		case "battery_pct":
			raw.battery = val
		case "pads_expire":
			raw.pads = val
		case "cabinet_open":
			raw.open = val
		case "cabinet_c":
			raw.cabinet = val
		}
	})
	if !ok {
		return nil, Meta{}, r.err
	}

	s := &AEDState{}
	m := r.meta(raw.ts, raw.seq)
	s.Ready = r.boolean(raw.ready, "ready", true)
	s.SelfTest = r.enum(raw.selfTest, "self_test", true, selfTestResults)
	s.SelfTestAt = r.integer(raw.selfTestAt, "self_test_at", false, 0, MaxSafeInt)
	s.BatteryPct = r.number(raw.battery, "battery_pct", true, 0, 100)
	s.PadsExpire = r.date(raw.pads, "pads_expire")
	s.CabinetOpen = r.boolean(raw.open, "cabinet_open", true)
	s.CabinetC = r.optNumber(raw.cabinet, "cabinet_c", -50, 150)
	if r.err != nil {
		return nil, Meta{}, r.err
	}
	return s, m, nil
}

// DecodeEvent decodes an event payload.
func DecodeEvent(b []byte) (Event, error) {
	var raw struct{ ts, seq, typ, code, slot, method, detail []byte }
	r := reader{index: -1}
	ok := r.object(b, func(key, val []byte) {
		switch string(key) {
		case "ts":
			raw.ts = val
		case "seq":
			raw.seq = val
		case "type":
			raw.typ = val
		case "code":
			raw.code = val
		case "slot":
			raw.slot = val
		case "method":
			raw.method = val
		case "detail":
			raw.detail = val
		}
	})
	if !ok {
		return Event{}, r.err
	}

	var e Event
	e.Meta = r.meta(raw.ts, raw.seq)
	e.Type = r.enum(raw.typ, "type", true, EventTypes)
	e.Code = r.code(raw.code, "code", 0, 32, isCodeChar)
	e.Slot = int(r.integer(raw.slot, "slot", false, 1, MaxSlots))
	e.Method = r.enum(raw.method, "method", false, accessMethods)
	e.Detail = r.text(raw.detail, "detail", 256)

	// Some types say nothing useful without their detail field.
	switch e.Type {
	case EventFaultRaised, EventFaultCleared:
		if e.Code == "" { // absent, empty, or already found wrong
			r.fail("code", "required by "+e.Type)
		}
	case EventAccessGranted, EventAccessDenied:
		if raw.method == nil {
			r.fail("method", "required by "+e.Type)
		}
	}
	if r.err != nil {
		return Event{}, r.err
	}
	return e, nil
}

// DecodeCommand decodes a command payload.
func DecodeCommand(b []byte) (Command, error) {
	var raw struct{ ts, seq, id, name, args, expires []byte }
	r := reader{index: -1}
	ok := r.object(b, func(key, val []byte) {
		switch string(key) {
		case "ts":
			raw.ts = val
		case "seq":
			raw.seq = val
		case "id":
			raw.id = val
		case "name":
			raw.name = val
		case "args":
			raw.args = val
		case "expires_at":
			raw.expires = val
		}
	})
	if !ok {
		return Command{}, r.err
	}

	var c Command
	c.Meta = r.meta(raw.ts, raw.seq)
	c.ID = r.id(raw.id, "id")
	c.Name = r.enum(raw.name, "name", true, CommandNames)
	c.Args = r.args(c.Name, raw.args)
	c.ExpiresAt = r.integer(raw.expires, "expires_at", true, 1, MaxSafeInt)
	if r.err != nil {
		return Command{}, r.err
	}
	return c, nil
}

// args decodes the arguments of the command name. Known arguments become
// bool, string or float64, as json.Unmarshal would make them; unknown ones
// are kept as json.RawMessage, so they encode again unchanged.
func (r *reader) args(name string, b []byte) map[string]any {
	if b == nil {
		switch name {
		case CmdACSet, CmdLockMode, CmdChargerSlot:
			r.fail("args", "required by "+name)
		}
		return nil
	}
	if !r.isType(b, "args", '{') {
		return nil
	}

	var args map[string]any
	var raw struct{ power, mode, setpoint, fan, seconds, slot, on []byte }
	forMembers(b, func(key, val []byte) {
		switch {
		case name == CmdACSet && string(key) == "power":
			raw.power = val
		case name == CmdACSet && string(key) == "mode":
			raw.mode = val
		case name == CmdACSet && string(key) == "setpoint_c":
			raw.setpoint = val
		case name == CmdACSet && string(key) == "fan":
			raw.fan = val
		case name == CmdLockUnlock && string(key) == "seconds":
			raw.seconds = val
		case name == CmdLockMode && string(key) == "mode":
			raw.mode = val
		case name == CmdChargerSlot && string(key) == "slot":
			raw.slot = val
		case name == CmdChargerSlot && string(key) == "on":
			raw.on = val
		default:
			if args == nil {
				args = make(map[string]any)
			}
			args[string(key)] = json.RawMessage(append([]byte(nil), val...))
		}
	})

	put := func(key string, v any) {
		if args == nil {
			args = make(map[string]any)
		}
		args[key] = v
	}
	r.parent = "args"
	switch name {
	case CmdACSet:
		if raw.power == nil && raw.mode == nil && raw.setpoint == nil && raw.fan == nil {
			r.parent = ""
			r.fail("args", "ac.set wants at least one of power, mode, setpoint_c, fan")
		}
		if raw.power != nil {
			put("power", r.boolean(raw.power, "power", true))
		}
		if raw.mode != nil {
			put("mode", r.enum(raw.mode, "mode", true, acModes))
		}
		if raw.setpoint != nil {
			put("setpoint_c", r.number(raw.setpoint, "setpoint_c", true, MinSetpointC, MaxSetpointC))
		}
		if raw.fan != nil {
			put("fan", r.enum(raw.fan, "fan", true, fanSpeeds))
		}
	case CmdLockUnlock:
		if raw.seconds != nil {
			put("seconds", float64(r.integer(raw.seconds, "seconds", true, 1, MaxUnlockS)))
		}
	case CmdLockMode:
		put("mode", r.enum(raw.mode, "mode", true, lockModes))
	case CmdChargerSlot:
		put("slot", float64(r.integer(raw.slot, "slot", true, 1, MaxSlots)))
		put("on", r.boolean(raw.on, "on", true))
	}
	r.parent = ""
	return args
}

// DecodeCommandResult decodes a cmd/result payload.
func DecodeCommandResult(b []byte) (CommandResult, error) {
	var raw struct{ ts, seq, id, ok, error []byte }
	r := reader{index: -1}
	ok := r.object(b, func(key, val []byte) {
		switch string(key) {
		case "ts":
			raw.ts = val
		case "seq":
			raw.seq = val
		case "id":
			raw.id = val
		case "ok":
			raw.ok = val
		case "error":
			raw.error = val
		}
	})
	if !ok {
		return CommandResult{}, r.err
	}

	var v CommandResult
	v.Meta = r.meta(raw.ts, raw.seq)
	v.ID = r.id(raw.id, "id")
	v.OK = r.boolean(raw.ok, "ok", true)
	v.Error = r.text(raw.error, "error", 256)
	if r.err != nil {
		return CommandResult{}, r.err
	}
	return v, nil
}

// DecodeAccessRequest decodes an access/req payload.
func DecodeAccessRequest(b []byte) (AccessRequest, error) {
	var raw struct{ ts, seq, id, method, token []byte }
	r := reader{index: -1}
	ok := r.object(b, func(key, val []byte) {
		switch string(key) {
		case "ts":
			raw.ts = val
		case "seq":
			raw.seq = val
		case "id":
			raw.id = val
		case "method":
			raw.method = val
		case "token":
			raw.token = val
		}
	})
	if !ok {
		return AccessRequest{}, r.err
	}

	var v AccessRequest
	v.Meta = r.meta(raw.ts, raw.seq)
	v.ID = r.id(raw.id, "id")
	v.Method = r.enum(raw.method, "method", true, accessMethods)
	if r.present(raw.token, "token", true) {
		v.Token = r.code(raw.token, "token", 8, 256, isTokenChar)
	}
	if r.err != nil {
		return AccessRequest{}, r.err
	}
	return v, nil
}

// DecodeAccessResponse decodes an access/res payload.
func DecodeAccessResponse(b []byte) (AccessResponse, error) {
	var raw struct{ ts, seq, id, granted, reason, unlock []byte }
	r := reader{index: -1}
	ok := r.object(b, func(key, val []byte) {
		switch string(key) {
		case "ts":
			raw.ts = val
		case "seq":
			raw.seq = val
		case "id":
			raw.id = val
		case "granted":
			raw.granted = val
		case "reason":
			raw.reason = val
		case "unlock_s":
			raw.unlock = val
		}
	})
	if !ok {
		return AccessResponse{}, r.err
	}

	var v AccessResponse
	v.Meta = r.meta(raw.ts, raw.seq)
	v.ID = r.id(raw.id, "id")
	v.Granted = r.boolean(raw.granted, "granted", true)
	v.Reason = r.text(raw.reason, "reason", 128)
	v.UnlockS = int(r.integer(raw.unlock, "unlock_s", false, 0, MaxUnlockS))
	if r.err != nil {
		return AccessResponse{}, r.err
	}
	return v, nil
}

// The enumerations of the contract, in the order the schemas list them.
var (
	kindNames       = []string{string(KindLock), string(KindAC), string(KindCharger), string(KindAED)}
	acModes         = []string{ModeCool, ModeHeat, ModeFan, ModeDry, ModeAuto}
	fanSpeeds       = []string{FanAuto, FanLow, FanMid, FanHigh}
	doorStates      = []string{DoorOpen, DoorClosed}
	boltStates      = []string{BoltLocked, BoltUnlocked, BoltJammed}
	lockModes       = []string{LockNormal, LockOpen, LockLockdown}
	slotStates      = []string{SlotEmpty, SlotCharging, SlotFull, SlotFault, SlotOff}
	selfTestResults = []string{SelfTestPass, SelfTestFail}
	accessMethods   = []string{MethodFace, MethodNFC, MethodQR}
)

// reader decodes the known members of a payload and keeps the first way in
// which they break the contract. Each method takes a member's raw value, nil
// when the member is absent, and returns the zero value after a failure so
// that a decoder can read every field and check the error once.
type reader struct {
	err    *FieldError
	parent string // path of the object being read, "" for the payload
	index  int    // its index when it is an array element, else -1
}

// object checks that b is JSON and an object and hands its members to fn.
func (r *reader) object(b []byte, fn func(key, val []byte)) bool {
	if !validJSON(b) {
		r.err = &FieldError{Reason: "not JSON"}
		return false
	}
	if !forMembers(b, fn) {
		r.err = &FieldError{Reason: "not a JSON object, got " + typeName(b[skipSpace(b, 0):])}
		return false
	}
	return true
}

func (r *reader) path(key string) string {
	p := r.parent
	if r.index >= 0 {
		p += "[" + strconv.Itoa(r.index) + "]"
	}
	switch {
	case p == "":
		return key
	case key == "":
		return p
	}
	return p + "." + key
}

func (r *reader) fail(key, reason string) {
	if r.err == nil {
		r.err = &FieldError{Field: r.path(key), Reason: reason}
	}
}

func (r *reader) present(b []byte, key string, required bool) bool {
	if b == nil {
		if required {
			r.fail(key, "required")
		}
		return false
	}
	return true
}

// isType checks that the value b starts as a value of the wanted type: '{',
// '[' or '"'.
func (r *reader) isType(b []byte, key string, open byte) bool {
	if b[0] == open {
		return true
	}
	want := map[byte]string{'{': "object", '[': "array", '"': "string"}[open]
	r.fail(key, "want "+want+", got "+typeName(b))
	return false
}

func (r *reader) meta(ts, seq []byte) Meta {
	return Meta{
		TS:  r.integer(ts, "ts", false, 0, MaxSafeInt),
		Seq: uint64(r.integer(seq, "seq", false, 0, MaxSafeInt)),
	}
}

func (r *reader) boolean(b []byte, key string, required bool) bool {
	if !r.present(b, key, required) {
		return false
	}
	switch string(b) {
	case "true":
		return true
	case "false":
		return false
	}
	r.fail(key, "want boolean, got "+typeName(b))
	return false
}

// number reads a number within lo..hi.
func (r *reader) number(b []byte, key string, required bool, lo, hi int64) float64 {
	if !r.present(b, key, required) {
		return 0
	}
	n, ok := readNumber(b)
	if !ok {
		r.fail(key, "want number, got "+typeName(b))
		return 0
	}
	if !n.in(lo, hi) {
		r.fail(key, fmt.Sprintf("out of range %d..%d", lo, hi))
		return 0
	}
	return n.float()
}

// optNumber reads an optional number within lo..hi; nil when absent.
func (r *reader) optNumber(b []byte, key string, lo, hi int64) *float64 {
	if b == nil {
		return nil
	}
	v := r.number(b, key, true, lo, hi)
	return &v
}

// integer reads an integer within lo..hi.
func (r *reader) integer(b []byte, key string, required bool, lo, hi int64) int64 {
	if !r.present(b, key, required) {
		return 0
	}
	n, ok := readNumber(b)
	if !ok || !n.isInt() {
		r.fail(key, "want integer, got "+typeName(b))
		return 0
	}
	if !n.in(lo, hi) {
		r.fail(key, fmt.Sprintf("out of range %d..%d", lo, hi))
		return 0
	}
	return n.int()
}

// enum reads a string that must be one of values, and returns the value
// from the list so that no copy of the payload is kept.
func (r *reader) enum(b []byte, key string, required bool, values []string) string {
	if !r.present(b, key, required) || !r.isType(b, key, '"') {
		return ""
	}
	for _, v := range values {
		if plainIs(b, v) {
			return v
		}
	}
	s, _ := unquote(b) // a value spelled with escapes
	for _, v := range values {
		if s == v {
			return v
		}
	}
	r.fail(key, fmt.Sprintf("%q is not one of %s", clip(s), strings.Join(values, ", ")))
	return ""
}

// code reads an optional ASCII string of minLen to maxLen characters, each
// accepted by ok.
func (r *reader) code(b []byte, key string, minLen, maxLen int, ok func(byte) bool) string {
	if b == nil || !r.isType(b, key, '"') {
		return ""
	}
	s, _ := unquote(b)
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			r.fail(key, fmt.Sprintf("character %q not allowed", clip(s[i:i+1])))
			return ""
		}
	}
	if len(s) < minLen || len(s) > maxLen {
		r.fail(key, fmt.Sprintf("want %d to %d characters, got %d", minLen, maxLen, len(s)))
		return ""
	}
	return s
}

// id reads a required command or request id.
func (r *reader) id(b []byte, key string) string {
	if !r.present(b, key, true) {
		return ""
	}
	return r.code(b, key, 1, MaxCommandIDLen, isIDChar)
}

// text reads optional free text of at most maxLen characters (code points,
// as JSON Schema counts them).
func (r *reader) text(b []byte, key string, maxLen int) string {
	if b == nil || !r.isType(b, key, '"') {
		return ""
	}
	s, _ := unquote(b)
	if n := utf8.RuneCountInString(s); n > maxLen {
		r.fail(key, fmt.Sprintf("want at most %d characters, got %d", maxLen, n))
		return ""
	}
	return s
}

// date reads a required calendar date YYYY-MM-DD of this millennium that
// exists (no 30 February).
func (r *reader) date(b []byte, key string) string {
	if !r.present(b, key, true) || !r.isType(b, key, '"') {
		return ""
	}
	s, _ := unquote(b)
	if !validDate(s) {
		r.fail(key, fmt.Sprintf("%q is not a date YYYY-MM-DD", clip(s)))
		return ""
	}
	return s
}

func validDate(s string) bool {
	if len(s) != 10 || s[0] != '2' || s[4] != '-' || s[7] != '-' {
		return false
	}
	for _, i := range []int{1, 2, 3, 5, 6, 8, 9} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	year := int(s[0]-'0')*1000 + int(s[1]-'0')*100 + int(s[2]-'0')*10 + int(s[3]-'0')
	month := int(s[5]-'0')*10 + int(s[6]-'0')
	day := int(s[8]-'0')*10 + int(s[9]-'0')
	if month < 1 || month > 12 || day < 1 {
		return false
	}
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		days = 29
	}
	return day <= days
}

// typeName names the JSON type of the raw value b, for error reasons.
func typeName(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	if n, ok := readNumber(b); ok && n.isInt() {
		return "integer " + clip(string(b))
	}
	return "number " + clip(string(b))
}

// The character classes of the schemas' patterns.

func isPrintable(c byte) bool { return c >= ' ' && c <= '~' }      // [ -~]
func isTokenChar(c byte) bool { return c > ' ' && c <= '~' }       // [!-~]
func isCodeChar(c byte) bool  { return isIDChar(c) || c == '.' }   // [A-Za-z0-9_.-]
func isConnChar(c byte) bool  { return isCodeChar(c) || c == ':' } // [A-Za-z0-9._:-]
func isIDChar(c byte) bool { // [A-Za-z0-9_-]
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-'
}
