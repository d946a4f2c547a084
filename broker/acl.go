package broker

import (
	"strings"

	"github.com/waystation/waystation/schemas"
)

// Reasons a connect, publish or subscribe is refused; they are the reason
// label of waystation_broker_denied_total.
const (
	reasonAnonymous   = "anonymous"      // no username
	reasonUnknown     = "unknown_device" // username is no registered device
	reasonBadSecret   = "bad_secret"     // wrong password
	reasonClientID    = "client_id"      // a device's client id is not its device id
	reasonWill        = "will"           // the will names a topic the client may not publish
	reasonCredentials = "credentials"    // the credential store failed
	reasonTopic       = "bad_topic"      // not a topic of the contract (or a wildcard)
	reasonForeign     = "foreign_topic"  // another device's topic
	reasonChannel     = "channel"        // own topic, but the channel flows the other way
	reasonRetained    = "retained"       // retained on a channel that is never retained
	reasonRetainedCmd = "retained_cmd"   // retained command
	reasonTooLarge    = "too_large"      // packet over MaxPacketBytes
	reasonRate        = "rate"           // a device publishing over MaxMsgsPerSecond: cut
	reasonMalformed   = "malformed"      // a topic with invalid UTF-8, a NUL or a wildcard: cut
	reasonLoginBusy   = "login_busy"     // another login with the same id did not finish in time
	reasonStarting    = "starting"       // logins were held for longer than a login may wait
)

// Actions are the action label of waystation_broker_denied_total.
const (
	actionConnect   = "connect"
	actionPublish   = "publish"
	actionSubscribe = "subscribe"
)

// deniedLabels lists every action and reason the broker can count, so the
// series exist at zero from the start.
var deniedLabels = map[string][]string{
	actionConnect: {reasonAnonymous, reasonUnknown, reasonBadSecret, reasonClientID,
		reasonWill, reasonCredentials, reasonTooLarge, reasonLoginBusy, reasonStarting},
	actionPublish: {reasonTopic, reasonForeign, reasonChannel, reasonRetained,
		reasonRetainedCmd, reasonTooLarge, reasonRate, reasonMalformed},
	actionSubscribe: {reasonTopic, reasonForeign, reasonChannel},
}

// controllerRoot is the part of the topic tree the controller may use.
const controllerRoot = "waystation/"

// peer is an authenticated client: a device of a station, or the
// controller.
type peer struct {
	station, device string
	controller      bool
}

// canPublish returns "" if p may publish on topic with the retain flag,
// else the reason it may not.
func (p peer) canPublish(topic string, retain bool) string {
	if retain && isCmdTopic(topic) {
		return reasonRetainedCmd
	}

	if p.controller {
		if !strings.HasPrefix(topic, controllerRoot) {
			return reasonTopic
		}
		return ""
	}

	t, err := schemas.ParseTopic(topic)
	switch {
	case err != nil:
		return reasonTopic
	case t.Station != p.station || t.Device != p.device:
		return reasonForeign
	case !t.Channel.FromDevice():
		return reasonChannel
	case retain && t.Channel != schemas.ChannelStatus:
		return reasonRetained
	}
	return ""
}

// canSubscribe returns "" if p may subscribe to filter (or be sent a
// message on that topic), else the reason it may not. A device gets exact
// topics only: wildcards do not parse as ids.
func (p peer) canSubscribe(filter string) string {
	if p.controller {
		if !strings.HasPrefix(filter, controllerRoot) {
			return reasonTopic
		}
		return ""
	}

	t, err := schemas.ParseTopic(filter)
	switch {
	case err != nil:
		return reasonTopic
	case t.Station != p.station || t.Device != p.device:
		return reasonForeign
	case t.Channel != schemas.ChannelCmd && t.Channel != schemas.ChannelAccessRes &&
		t.Channel != schemas.ChannelAccessList:
		return reasonChannel
	}
	return ""
}

// isCmdTopic reports whether topic is a command topic. It is judged by the
// last level alone, so that no topic ending in cmd, in this contract or a
// later one, can hold a retained command.
func isCmdTopic(topic string) bool {
	return topic == string(schemas.ChannelCmd) ||
		strings.HasSuffix(topic, "/"+string(schemas.ChannelCmd))
}
