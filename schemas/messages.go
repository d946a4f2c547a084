package schemas

// Meta is carried by every message: the device's clock and counter. Both are
// optional; zero means absent.
type Meta struct {
	TS  int64  `json:"ts,omitempty"`  // Unix milliseconds, the sender's clock
	Seq uint64 `json:"seq,omitempty"` // per-device counter
}

// Status is published retained on the status channel when a device connects
// (online) and set as its last will (offline).
type Status struct {
	Meta
	Online    bool   `json:"online"`
	Kind      Kind   `json:"kind"`
	Firmware  string `json:"firmware,omitempty"`
	Model     string `json:"model,omitempty"`
	IntervalS int    `json:"interval_s,omitempty"` // telemetry period the device keeps, seconds
	// Conn names one connection of the device; its online status and its
	// last will carry the same value, so a will left by an older connection
	// can be told from the current one.
	Conn string `json:"conn,omitempty"`
}

// AC modes.
const (
	ModeCool = "cool"
	ModeHeat = "heat"
	ModeFan  = "fan"
	ModeDry  = "dry"
	ModeAuto = "auto"
)

// AC fan speeds, for the ac.set command.
const (
	FanAuto = "auto"
	FanLow  = "low"
	FanMid  = "mid"
	FanHigh = "high"
)

// The setpoint range of an air conditioner, degrees Celsius.
const (
	MinSetpointC = 16
	MaxSetpointC = 32
)

// ACState is the telemetry of an air conditioner.
type ACState struct {
	Power       bool     `json:"power"`
	Mode        string   `json:"mode"`
	SetpointC   float64  `json:"setpoint_c"`
	RoomC       float64  `json:"room_c"`
	OutdoorC    *float64 `json:"outdoor_c,omitempty"`
	HumidityPct *float64 `json:"humidity_pct,omitempty"`
	PowerW      *float64 `json:"power_w,omitempty"`
	Fault       string   `json:"fault,omitempty"` // vendor fault code; empty when healthy
}

// Door contact states.
const (
	DoorOpen   = "open"
	DoorClosed = "closed"
)

// Bolt states.
const (
	BoltLocked   = "locked"
	BoltUnlocked = "unlocked"
	BoltJammed   = "jammed"
)

// Door terminal modes.
const (
	LockNormal   = "normal"   // credentials needed
	LockOpen     = "open"     // held unlocked
	LockLockdown = "lockdown" // nobody enters
)

// LockState is the telemetry of a door terminal.
type LockState struct {
	Door       string   `json:"door"` // open, closed
	Bolt       string   `json:"bolt"` // locked, unlocked, jammed
	Mode       string   `json:"mode"` // normal, open, lockdown
	BatteryPct *float64 `json:"battery_pct,omitempty"`
	Tamper     bool     `json:"tamper,omitempty"`
	Occupancy  *int     `json:"occupancy,omitempty"` // people inside, when the terminal counts them
	// AllowlistVersion is the version of the allow-list the terminal holds
	// (see AccessList); absent when it keeps none.
	AllowlistVersion *int64 `json:"allowlist_version,omitempty"`
}

// Charger slot states.
const (
	SlotEmpty    = "empty"
	SlotCharging = "charging"
	SlotFull     = "full"
	SlotFault    = "fault"
	SlotOff      = "off"
)

// MaxSlots is the most bays a charger cabinet reports; slots are numbered
// from 1 to MaxSlots, each at most once.
const MaxSlots = 64

// Slot is one bay of a charger cabinet.
type Slot struct {
	Slot   int      `json:"slot"`  // 1-based
	State  string   `json:"state"` // empty, charging, full, fault, off
	SocPct *float64 `json:"soc_pct,omitempty"`
	TempC  *float64 `json:"temp_c,omitempty"`
}

// ChargerState is the telemetry of a charger cabinet.
type ChargerState struct {
	Slots    []Slot   `json:"slots"`
	CabinetC *float64 `json:"cabinet_c,omitempty"`
	Smoke    bool     `json:"smoke"`
	Mains    bool     `json:"mains"`
}

// AED self-test outcomes.
const (
	SelfTestPass = "pass"
	SelfTestFail = "fail"
)

// AEDState is the telemetry of a defibrillator cabinet.
type AEDState struct {
	Ready       bool     `json:"ready"`
	SelfTest    string   `json:"self_test"`              // pass, fail
	SelfTestAt  int64    `json:"self_test_at,omitempty"` // Unix milliseconds of the last self-test
	BatteryPct  float64  `json:"battery_pct"`
	PadsExpire  string   `json:"pads_expire"` // date, YYYY-MM-DD
	CabinetOpen bool     `json:"cabinet_open"`
	CabinetC    *float64 `json:"cabinet_c,omitempty"`
}

// Telemetry is a decoded telemetry message: Meta and exactly one state, the
// one of Kind.
type Telemetry struct {
	Meta
	Kind    Kind
	AC      *ACState
	Lock    *LockState
	Charger *ChargerState
	AED     *AEDState
}

// State returns the kind's state as the value to encode.
func (t Telemetry) State() any {
	switch t.Kind {
	case KindAC:
		return t.AC
	case KindLock:
		return t.Lock
	case KindCharger:
		return t.Charger
	case KindAED:
		return t.AED
	}
	return nil
}

// Event is something that happened at a device.
type Event struct {
	Meta
	Type   string `json:"type"`             // one of EventTypes
	Code   string `json:"code,omitempty"`   // fault code, for fault events
	Slot   int    `json:"slot,omitempty"`   // charger slot, where it applies
	Method string `json:"method,omitempty"` // access method, for access events
	Detail string `json:"detail,omitempty"` // free text for people
}

// Event types.
const (
	EventAccessGranted   = "access_granted"
	EventAccessDenied    = "access_denied"
	EventFaultRaised     = "fault_raised"
	EventFaultCleared    = "fault_cleared"
	EventDoorForced      = "door_forced"
	EventDoorHeld        = "door_held"
	EventTamper          = "tamper"
	EventDuress          = "duress"
	EventTooManyFailures = "too_many_failures"
	EventMemoryFull      = "memory_full"
	EventCabinetOpened   = "cabinet_opened"
	EventCabinetClosed   = "cabinet_closed"
	EventMainsLost       = "mains_lost"
	EventMainsRestored   = "mains_restored"
	EventSmoke           = "smoke"
	EventSelfTest        = "self_test"
	EventBoot            = "boot"
)

// EventTypes lists the event types of the contract.
var EventTypes = []string{
	EventAccessGranted, EventAccessDenied, EventFaultRaised, EventFaultCleared,
	EventDoorForced, EventDoorHeld, EventTamper, EventDuress, EventTooManyFailures,
	EventMemoryFull, EventCabinetOpened, EventCabinetClosed, EventMainsLost,
	EventMainsRestored, EventSmoke, EventSelfTest, EventBoot,
}

// Command names.
const (
	CmdACSet       = "ac.set"
	CmdLockUnlock  = "lock.unlock"
	CmdLockMode    = "lock.mode"
	CmdChargerSlot = "charger.slot"
	CmdReboot      = "device.reboot"
	// CmdPing changes nothing: the device answers and sends its telemetry
	// at once. The conformance probe uses it to see that a device answers,
	// in time, and at most once per command id.
	CmdPing = "device.ping"
)

// CommandNames lists the commands of the contract.
var CommandNames = []string{CmdACSet, CmdLockUnlock, CmdLockMode, CmdChargerSlot, CmdReboot,
	CmdPing}

// MaxUnlockS is the longest a door may be unlocked by one command or one
// access response, seconds.
const MaxUnlockS = 600

// MaxCommandIDLen is the longest command or access request id.
const MaxCommandIDLen = 64

// Command is sent by the platform on a device's cmd channel.
type Command struct {
	Meta
	ID   string `json:"id"`
	Name string `json:"name"`
	// Args are the command's arguments. DecodeCommand stores known ones as
	// bool, string or float64 and unknown ones as json.RawMessage; read them
	// with ArgBool, ArgString, ArgFloat and ArgInt.
	Args map[string]any `json:"args,omitempty"`
	// ExpiresAt is in Unix milliseconds; a device drops the command after it.
	ExpiresAt int64 `json:"expires_at"`
}

// CommandResult is a device's answer to a command.
type CommandResult struct {
	Meta
	ID    string `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Access methods.
const (
	MethodFace = "face"
	MethodNFC  = "nfc"
	MethodQR   = "qr"
)

// AccessRequest asks whether a credential may enter.
type AccessRequest struct {
	Meta
	ID     string `json:"id"`
	Method string `json:"method"`
	Token  string `json:"token"` // opaque credential token, never a face image or card number
}

// AccessResponse answers an AccessRequest.
type AccessResponse struct {
	Meta
	ID      string `json:"id"`
	Granted bool   `json:"granted"`
	Reason  string `json:"reason,omitempty"`
	UnlockS int    `json:"unlock_s,omitempty"` // seconds to keep the door unlocked
}
