package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/schemas"
)

// accessFlags are the flags of serve for door access.
type accessFlags struct {
	unlockS    int
	ratePerS   float64
	burst      int
	staleAfter time.Duration
	usageDays  int
}

func addAccessFlags(f *pflag.FlagSet, o *accessFlags) {
	f.IntVar(&o.unlockS, "unlock-seconds", controller.DefaultUnlockS,
		"how long a door stays unlocked after a granted request, seconds")
	f.Float64Var(&o.ratePerS, "access-rate", controller.DefaultAccessRatePerS,
		"access requests a second each door terminal may make before it is throttled")
	f.IntVar(&o.burst, "access-burst", controller.DefaultAccessBurst,
		"access requests a door terminal may make at once before the rate applies")
	f.DurationVar(&o.staleAfter, "allowlist-stale", controller.DefaultStaleAfter,
		"a door terminal missing an allow-list change older than this is stale")
	f.IntVar(&o.usageDays, "usage-retention-days",
		int(controller.DefaultUsageRetention/(24*time.Hour)), "days of hourly visit counts kept")
}

// check refuses flag values that make no sense; zero values (options built
// in code) take the defaults.
func (o *accessFlags) check() error {
	switch {
	case o.unlockS < 0 || o.unlockS > schemas.MaxUnlockS:
		return fmt.Errorf("--unlock-seconds %d: want 1..%d", o.unlockS, schemas.MaxUnlockS)
	case o.ratePerS < 0 || o.ratePerS > 1000:
		return fmt.Errorf("--access-rate %g: want a rate up to 1000 a second", o.ratePerS)
	case o.burst < 0 || o.burst > 10000:
		return fmt.Errorf("--access-burst %d: want 1..10000", o.burst)
	case o.staleAfter < 0:
		return fmt.Errorf("--allowlist-stale %v: want a positive duration, e.g. 1h", o.staleAfter)
	case o.usageDays < 0 || o.usageDays > 100*366:
		return fmt.Errorf("--usage-retention-days %d: want 1 to 36600", o.usageDays)
	}
	return nil
}

// accessParts are the parts of serve for door access.
type accessParts struct {
	creds  *controller.Credentials
	rules  *controller.AccessRules
	access *controller.Access
	lists  *controller.AllowLists
	usage  *controller.Usage
	loc    *time.Location   // of opening hours and usage days
	now    func() time.Time // the controller's clock
}

// openAccess builds the access parts and hooks them into ingest. It runs
// after ingest is built and before the API.
func (s *server) openAccess() error {
	var err error
	a := &s.acc
	a.loc, a.now = s.loc, s.clock.Now
	if a.creds, err = controller.NewCredentials(s.db, s.clock.Now); err != nil {
		return err
	}
	if a.rules, err = controller.NewAccessRules(s.db, s.clock.Now); err != nil {
		return err
	}
	a.usage, err = controller.NewUsage(controller.UsageOptions{
		DB: s.db, Location: s.loc, Retention: time.Duration(s.o.access.usageDays) * 24 * time.Hour,
		Now: s.clock.Now, Logger: s.log, Registerer: s.reg,
	})
	if err != nil {
		return err
	}
	s.in.Observe(a.usage.Observe)

	a.access, err = controller.NewAccess(controller.AccessOptions{
		Bus: s.bus(), Registry: s.devs, Twins: s.twin, Credentials: a.creds, Rules: a.rules,
		Visits: a.usage, Location: s.loc, UnlockS: s.o.access.unlockS, RatePerS: s.o.access.ratePerS,
		Burst: s.o.access.burst, Now: s.clock.Now, Logger: s.log, Registerer: s.reg,
	})
	if err != nil {
		return err
	}
	s.in.Observe(a.access.Observe)

	a.lists, err = controller.NewAllowLists(controller.AllowListOptions{
		DB: s.db, Bus: s.bus(), Registry: s.devs, Credentials: a.creds, Rules: a.rules,
		StaleAfter: s.o.access.staleAfter, Now: s.clock.Now, Logger: s.log, Registerer: s.reg,
	})
	if err != nil {
		return err
	}
	s.in.Observe(a.lists.Observe)
	return nil
}

// apiOptions gives the API the access parts.
func (a *accessParts) apiOptions(o *controller.APIOptions) {
	o.Credentials, o.Rules, o.AllowLists, o.Usage = a.creds, a.rules, a.lists, a.usage
	o.Location, o.Now = a.loc, a.now
}

// runAccess starts the access parts' loops in g until ctx ends.
func (s *server) runAccess(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error { return s.acc.lists.Run(ctx) })
	g.Go(func() error { return s.acc.usage.Run(ctx) })
}
