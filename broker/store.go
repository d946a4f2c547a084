package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
)

// store is mochi's bbolt storage hook, kept to retained messages: the
// devices' presence lives in their retained status, which must survive a
// restart. The hook would also write every session, subscription, in-flight
// QoS 1 message and $SYS tick, each in its own fsynced transaction; devices
// use clean sessions, so that would only make the disk the broker's limit
// (a county of 345 devices connecting at once took over ten seconds).
type store struct {
	*bolt.Hook
}

// Provides implements mqtt.Hook.
func (s *store) Provides(b byte) bool {
	switch b {
	case mqtt.OnRetainMessage, mqtt.StoredRetainedMessages:
		return s.Hook.Provides(b)
	}
	return false
}
