package schemas

import (
	"embed"
	"fmt"
)

// SchemaFiles holds the JSON Schema (draft 2020-12) files of the contract,
// one per message, as json/<name>.schema.json with name from SchemaNames.
// They are what device vendors validate against; the decoders of this
// package accept exactly what they accept.
//
//go:embed json/*.schema.json
var SchemaFiles embed.FS

// SchemaNames lists the messages that have a schema file.
var SchemaNames = []string{
	"status",
	"telemetry-ac", "telemetry-lock", "telemetry-charger", "telemetry-aed",
	"event", "cmd", "cmd-result", "access-req", "access-res", "access-list",
}

// SchemaPath returns the path within SchemaFiles of a schema name.
func SchemaPath(name string) string { return "json/" + name + ".schema.json" }

// SchemaName returns the name of the schema of the payloads on channel ch of
// a device of kind k, or "" when there is none (telemetry of an unknown
// kind, an unknown channel).
func SchemaName(ch Channel, k Kind) string {
	switch ch {
	case ChannelStatus:
		return "status"
	case ChannelTelemetry:
		if !k.Valid() {
			return ""
		}
		return "telemetry-" + string(k)
	case ChannelEvent:
		return "event"
	case ChannelCmd:
		return "cmd"
	case ChannelCmdResult:
		return "cmd-result"
	case ChannelAccessReq:
		return "access-req"
	case ChannelAccessRes:
		return "access-res"
	case ChannelAccessList:
		return "access-list"
	}
	return ""
}

// DecodePayload decodes the payload of a message on channel ch of a device of
// kind k with the decoder of that channel, for tools that check a device's
// traffic whatever it is. The value is a Status, Telemetry, Event, Command,
// CommandResult, AccessRequest, AccessResponse or AccessList.
func DecodePayload(ch Channel, k Kind, b []byte) (any, error) {
	switch ch {
	case ChannelStatus:
		return DecodeStatus(b)
	case ChannelTelemetry:
		return DecodeTelemetry(k, b)
	case ChannelEvent:
		return DecodeEvent(b)
	case ChannelCmd:
		return DecodeCommand(b)
	case ChannelCmdResult:
		return DecodeCommandResult(b)
	case ChannelAccessReq:
		return DecodeAccessRequest(b)
	case ChannelAccessRes:
		return DecodeAccessResponse(b)
	case ChannelAccessList:
		return DecodeAccessList(b)
	}
	return nil, &FieldError{Reason: fmt.Sprintf("unknown channel %q", clip(string(ch)))}
}
