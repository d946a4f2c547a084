package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
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

// TEMPORARY: plain decoding until the strict decoders land.
func decode(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return &FieldError{Reason: fmt.Sprintf("not JSON: %v", err)}
	}
	return nil
}

// DecodeStatus decodes a status payload.
func DecodeStatus(b []byte) (Status, error) { var v Status; return v, decode(b, &v) }

// DecodeTelemetry decodes a telemetry payload of a device of kind k.
func DecodeTelemetry(k Kind, b []byte) (Telemetry, error) {
	t := Telemetry{Kind: k}
	var err error
	switch k {
	case KindAC:
		t.AC = new(ACState)
		err = decode(b, t.AC)
	case KindLock:
		t.Lock = new(LockState)
		err = decode(b, t.Lock)
	case KindCharger:
		t.Charger = new(ChargerState)
		err = decode(b, t.Charger)
	case KindAED:
		t.AED = new(AEDState)
		err = decode(b, t.AED)
	default:
		return t, &FieldError{Reason: fmt.Sprintf("unknown kind %q", k)}
	}
	if err == nil {
		err = decode(b, &t.Meta)
	}
	return t, err
}

// DecodeEvent decodes an event payload.
func DecodeEvent(b []byte) (Event, error) { var v Event; return v, decode(b, &v) }

// DecodeCommand decodes a command payload.
func DecodeCommand(b []byte) (Command, error) { var v Command; return v, decode(b, &v) }

// DecodeCommandResult decodes a cmd/result payload.
func DecodeCommandResult(b []byte) (CommandResult, error) {
	var v CommandResult
	return v, decode(b, &v)
}

// DecodeAccessRequest decodes an access/req payload.
func DecodeAccessRequest(b []byte) (AccessRequest, error) {
	var v AccessRequest
	return v, decode(b, &v)
}

// DecodeAccessResponse decodes an access/res payload.
func DecodeAccessResponse(b []byte) (AccessResponse, error) {
	var v AccessResponse
	return v, decode(b, &v)
}
