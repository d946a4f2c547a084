package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/waystation/waystation/broker"
	"github.com/waystation/waystation/controller"
)

// alertFlags are the flags of serve for alerts.
type alertFlags struct {
	grace         time.Duration
	escalateAfter time.Duration
	stationWindow time.Duration
}

func addAlertFlags(f *pflag.FlagSet, o *alertFlags) {
	f.DurationVar(&o.grace, "alert-grace", controller.DefaultAlertGrace,
		"after a start, how long devices have to reconnect before offline alerts page anyone")
	f.DurationVar(&o.escalateAfter, "alert-escalate-after", controller.DefaultEscalateAfter,
		"a critical alert unacknowledged this long is escalated (then after twice as long, ...)")
	f.DurationVar(&o.stationWindow, "alert-station-window", controller.DefaultAlertStationWindow,
		"devices of a station that all go quiet within this make one station-down alert")
}

// check refuses flag values that make no sense; zero values (options built
// in code) take the defaults.
func (o *alertFlags) check() error {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--alert-grace", o.grace}, {"--alert-escalate-after", o.escalateAfter},
		{"--alert-station-window", o.stationWindow}} {
		if d.v < 0 || d.v > 24*time.Hour {
			return fmt.Errorf("%s %v: want a duration up to 24h, e.g. 2m", d.flag, d.v)
		}
	}
	return nil
}

// alertParts are the parts of serve for alerts.
type alertParts struct {
	alerts *controller.Alerts
}

// openAlerts builds the alert rules and hooks them into ingest and
// presence. It runs after openNotify (alerts are told to s.notify),
// openAccess (stale allow-lists raise alerts) and openCommands (an
// overheating charger slot is switched off), and before the API.
func (s *server) openAlerts() error {
	o := controller.AlertOptions{
		DB: s.db, Registry: s.devs, Twins: s.twin, Bus: alertBus{s.bus()}, Location: s.loc,
		Grace: s.o.alerts.grace, EscalateAfter: s.o.alerts.escalateAfter,
		StationWindow: s.o.alerts.stationWindow,
		// Timers are checked every 10 s of the controller's clock.
		Every: max(time.Duration(float64(10*time.Second)/s.o.speed), 50*time.Millisecond),
		Now:   s.clock.Now, Logger: s.log, Registerer: s.reg,
	}
	if len(s.notify) > 0 {
		o.Notifier = s.notify
	}
	if s.cmds != nil {
		o.Commands = s.cmds
	}
	if s.acc.lists != nil {
		o.AllowLists = s.acc.lists
	}
	var err error
	if s.al.alerts, err = controller.NewAlerts(o); err != nil {
		return err
	}
	s.in.Observe(s.al.alerts.Observe)
	s.pres.OnSilent(s.al.alerts.DeviceSilent)
	return nil
}

// alertBus is the bus alerts publish on: the embedded broker's "closed"
// reads as controller.ErrBusClosed, as the external broker's does, so the
// messages of a clean stop's last moments are kept for the next start
// without a warning.
type alertBus struct{ controller.Bus }

func (b alertBus) Publish(topic string, qos byte, retained bool, payload []byte) error {
	err := b.Bus.Publish(topic, qos, retained, payload)
	if errors.Is(err, broker.ErrClosed) {
		return fmt.Errorf("%w: %w", controller.ErrBusClosed, err)
	}
	return err
}

// flushAlerts writes and tells the alert changes made after the alerts'
// loop stopped: ingest drains its queues after it, and presence may call
// a device silent. Their messages are kept for the next start.
func (s *server) flushAlerts() {
	if s.al.alerts == nil {
		return
	}
	if err := s.al.alerts.Flush(); err != nil {
		s.log.Error("write alerts", "err", err)
	}
}

// apiOptions gives the API the alerts.
func (a *alertParts) apiOptions(o *controller.APIOptions) { o.Alerts = a.alerts }

// runAlerts starts the alerts' loop in g until ctx ends. On an external
// broker, each reconnection starts the alerts' grace period again: the
// devices reconnect too, and their wills and silences meanwhile page
// nobody unless they stay away.
func (s *server) runAlerts(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error { return s.al.alerts.Run(ctx) })
	if s.ext == nil {
		return
	}
	g.Go(func() error {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		was := s.ext.Connected()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
			now := s.ext.Connected()
			if now && !was {
				s.log.Info("broker connection back: alert grace period restarted")
				s.al.alerts.Grace()
			}
			was = now
		}
	})
}
