package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/waystation/waystation/controller"
)

// commandFlags are the flags of serve for commands.
type commandFlags struct {
	ttl           time.Duration
	retry         time.Duration
	effectWithin  time.Duration
	retentionDays int
}

func addCommandFlags(f *pflag.FlagSet, o *commandFlags) {
	f.DurationVar(&o.ttl, "command-expiry", controller.DefaultCommandTTL,
		"how long a command that names no expiry may wait for its device")
	f.DurationVar(&o.retry, "command-retry", controller.DefaultCommandRetry,
		"how long a sent command waits for its answer before it is sent again")
	f.DurationVar(&o.effectWithin, "ac-effect-within", controller.DefaultEffectWithin,
		"how long after an ac.set the room must move toward the setpoint")
	f.IntVar(&o.retentionDays, "command-retention-days",
		int(controller.DefaultCommandRetention/(24*time.Hour)), "days finished commands are kept")
}

// check refuses flag values that make no sense; zero values take the
// defaults.
func (o *commandFlags) check() error {
	switch {
	case o.ttl < 0 || o.ttl > controller.DefaultCommandMaxTTL:
		return fmt.Errorf("--command-expiry %v: want 1s to %v", o.ttl, controller.DefaultCommandMaxTTL)
	case o.ttl > 0 && o.ttl < time.Second:
		return fmt.Errorf("--command-expiry %v: want 1s to %v", o.ttl, controller.DefaultCommandMaxTTL)
	case o.retry < 0 || (o.retry > 0 && o.retry < 100*time.Millisecond):
		return fmt.Errorf("--command-retry %v: want at least 100ms", o.retry)
	case o.effectWithin < 0:
		return fmt.Errorf("--ac-effect-within %v: want a positive duration, e.g. 15m", o.effectWithin)
	case o.retentionDays < 0 || o.retentionDays > 100*366:
		return fmt.Errorf("--command-retention-days %d: want 1 to 36600", o.retentionDays)
	}
	return nil
}

// openCommands builds the command sender and hooks it into ingest. It runs
// after ingest is built and before the API.
func (s *server) openCommands() error {
	var err error
	s.cmds, err = controller.NewCommands(controller.CommandsOptions{
		DB: s.db, Bus: s.bus(), Registry: s.devs, Twins: s.twin,
		DefaultTTL: s.o.commands.ttl, RetryEvery: s.o.commands.retry,
		EffectWithin: s.o.commands.effectWithin, Partition: s.o.ext.part,
		Retention: time.Duration(s.o.commands.retentionDays) * 24 * time.Hour,
		Notifier:  s.notify, Now: s.clock.Now, Logger: s.log, Registerer: s.reg,
	})
	if err != nil {
		return err
	}
	s.in.Observe(s.cmds.Observe)
	return nil
}

// runCommands starts the command sender in g until ctx ends.
func (s *server) runCommands(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error { return s.cmds.Run(ctx) })
}
