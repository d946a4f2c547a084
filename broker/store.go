package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
)

// store is mochi's bbolt storage hook, kept to retained messages, sessions
// and subscriptions. The hook also writes every in-flight QoS 1 and 2
// message (twice: stored, then deleted on acknowledgement) and the $SYS
// figures every tick, each in its own fsynced transaction; at a fleet's
// telemetry rate that would make the disk the broker's limit.
type store struct {
	*bolt.Hook
}

// Provides implements mqtt.Hook.
func (s *store) Provides(b byte) bool {
	switch b {
	case mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
		mqtt.StoredInflightMessages, mqtt.OnSysInfoTick, mqtt.StoredSysInfo:
		return false
	}
	return s.Hook.Provides(b)
}
