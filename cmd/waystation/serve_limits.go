package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/waystation/waystation/broker"
)

// limitFlags are serve's limits on what one device may send.
type limitFlags struct {
	msgsPerSecond float64
	burst         int
}

func addLimitFlags(f *pflag.FlagSet, o *limitFlags) {
	f.Float64Var(&o.msgsPerSecond, "max-msgs-per-second", broker.DefaultMaxMsgsPerSecond,
		"publishes a second one device may make after --msg-burst; the one over it drops "+
			"the connection and is counted (0: no limit)")
	f.IntVar(&o.burst, "msg-burst", broker.DefaultMsgBurst,
		"publishes one device may make at once before --max-msgs-per-second applies")
}

// check refuses values that make no sense.
func (o *limitFlags) check() error {
	switch {
	case o.msgsPerSecond < 0 || o.msgsPerSecond > 1e6:
		return fmt.Errorf("--max-msgs-per-second %g: want 0 (no limit) to 1000000", o.msgsPerSecond)
	case o.burst < 0 || o.burst > 1e7:
		return fmt.Errorf("--msg-burst %d: want 1 to 10000000", o.burst)
	}
	return nil
}

// apply sets the broker's rate limit. On a simulated clock (--speed) the
// devices of the demo report that much faster, so the limit is scaled
// with it: it counts publishes a second of the controller's clock.
func (o *limitFlags) apply(b *broker.Options, speed float64) {
	switch {
	case o.msgsPerSecond == 0:
		b.MaxMsgsPerSecond = -1 // no limit
	case speed > 1:
		b.MaxMsgsPerSecond = o.msgsPerSecond * speed
	default:
		b.MaxMsgsPerSecond = o.msgsPerSecond
	}
	b.MsgBurst = o.burst
	if speed > 1 {
		b.MsgBurst = int(min(float64(o.burst)*speed, 1e9))
	}
}
