package schemas

import (
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every topic of contract version 1.
const Prefix = "waystation/v1/"

// Channel names what a device topic carries; it is the part of the topic
// after the station and device ids.
type Channel string

// The channels of a device, and which way they flow.
const (
	ChannelStatus    Channel = "status"     // device → platform, QoS 1, retained
	ChannelTelemetry Channel = "telemetry"  // device → platform, QoS 0 or 1
	ChannelEvent     Channel = "event"      // device → platform, QoS 1
	ChannelCmd       Channel = "cmd"        // platform → device, QoS 1, never retained
	ChannelCmdResult Channel = "cmd/result" // device → platform, QoS 1
	ChannelAccessReq Channel = "access/req" // lock → platform, QoS 1
	ChannelAccessRes Channel = "access/res" // platform → lock, QoS 1
	// ChannelAccessList carries a door terminal's allow-list: platform →
	// lock, QoS 1, retained, so a terminal gets the current list when it
	// subscribes.
	ChannelAccessList Channel = "access/list"
)

// Channels lists every device channel.
var Channels = []Channel{
	ChannelStatus, ChannelTelemetry, ChannelEvent, ChannelCmd,
	ChannelCmdResult, ChannelAccessReq, ChannelAccessRes, ChannelAccessList,
}

// FromDevice reports whether devices publish on c (the rest are published
// by the platform and subscribed to by devices).
func (c Channel) FromDevice() bool {
	switch c {
	case ChannelStatus, ChannelTelemetry, ChannelEvent, ChannelCmdResult, ChannelAccessReq:
		return true
	}
	return false
}

// Valid reports whether c is a channel of the contract.
func (c Channel) Valid() bool {
	for _, k := range Channels {
		if c == k {
			return true
		}
	}
	return false
}

// ErrTopic is returned, wrapped, for a topic outside the contract.
var ErrTopic = errors.New("not a waystation v1 topic")

// MaxIDLen is the longest station or device id.
const MaxIDLen = 32

// ValidID reports whether s is a valid station or device id:
// [a-z0-9][a-z0-9-]{0,31}.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return false
		}
	}
	return true
}

// AlertsStation is the reserved word that takes the station position in
// alert topics; no station may use it as its id.
const AlertsStation = "alerts"

// Topic is a parsed device topic: waystation/v1/{station}/{device}/{channel}.
type Topic struct {
	Station string
	Device  string
	Channel Channel
}

// String returns the topic name.
func (t Topic) String() string {
	return Prefix + t.Station + "/" + t.Device + "/" + string(t.Channel)
}

// DeviceTopic returns the topic of a device's channel.
func DeviceTopic(station, device string, ch Channel) string {
	return Topic{Station: station, Device: device, Channel: ch}.String()
}

// DevicePrefix returns the prefix under which a device publishes:
// waystation/v1/{station}/{device}/.
func DevicePrefix(station, device string) string {
	return Prefix + station + "/" + device + "/"
}

// AlertTopic returns the topic on which alerts of a station are published.
func AlertTopic(station string) string {
	return Prefix + AlertsStation + "/" + station
}

// DeviceFilter returns the subscription filter that matches a channel of
// every device of every station.
func DeviceFilter(ch Channel) string {
	return Prefix + "+/+/" + string(ch)
}

// ParseTopic parses a device topic. It fails, wrapping ErrTopic, for
// anything that is not waystation/v1/{station}/{device}/{channel} with valid
// ids and a channel of the contract.
func ParseTopic(name string) (Topic, error) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return Topic{}, fmt.Errorf("%w: %q lacks prefix %q", ErrTopic, clip(name), Prefix)
	}
	station, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return Topic{}, fmt.Errorf("%w: %q has no device", ErrTopic, clip(name))
	}
	device, ch, ok := strings.Cut(rest, "/")
	if !ok {
		return Topic{}, fmt.Errorf("%w: %q has no channel", ErrTopic, clip(name))
	}
	if !ValidID(station) || station == AlertsStation {
		return Topic{}, fmt.Errorf("%w: bad station id %q", ErrTopic, clip(station))
	}
	if !ValidID(device) {
		return Topic{}, fmt.Errorf("%w: bad device id %q", ErrTopic, clip(device))
	}
	if !Channel(ch).Valid() {
		return Topic{}, fmt.Errorf("%w: unknown channel %q", ErrTopic, clip(ch))
	}
	return Topic{Station: station, Device: device, Channel: Channel(ch)}, nil
}

// clip bounds untrusted text quoted in an error.
func clip(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
