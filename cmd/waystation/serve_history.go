package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
)

// historyFlags are the flags of serve for telemetry history.
type historyFlags struct {
	retention time.Duration
	flush     time.Duration
}

func addHistoryFlags(f *pflag.FlagSet, o *historyFlags) {
	f.DurationVar(&o.retention, "history-retention", devices.DefaultHistoryRetention,
		"how long telemetry history is kept (e.g. 168h, 30m)")
	f.DurationVar(&o.flush, "history-flush", devices.DefaultHistoryFlushEvery,
		"how often telemetry history is written to the data file; a crash loses at most this much of it")
}

// check refuses a retention that makes no sense; zero (options built in
// code) takes the default.
func (o *historyFlags) check() error {
	if o.retention < 0 || (o.retention > 0 && o.retention < time.Minute) {
		return fmt.Errorf("--history-retention %v: want at least 1m", o.retention)
	}
	if o.flush < 0 || (o.flush > 0 && (o.flush < 100*time.Millisecond || o.flush > time.Minute)) {
		return fmt.Errorf("--history-flush %v: want between 100ms and 1m", o.flush)
	}
	return nil
}

// openHistory keeps valid telemetry in the history, a device's last message
// of each second (the history's resolution). It runs
// after ingest is built and before the API.
func (s *server) openHistory() error {
	var err error
	s.hist, err = devices.NewHistory(s.db, devices.HistoryOptions{
		Retention: s.o.history.retention, FlushEvery: s.o.history.flush, Now: s.clock.Now, Logger: s.log, Registerer: s.reg,
	})
	if err != nil {
		return err
	}
	s.in.Observe(func(obs controller.Observation) {
		if obs.Telem != nil {
			// Encoded with the batch it is written in, not here.
			s.hist.RecordTelemetry(obs.Device.ID, obs.At, obs.Telem)
		}
	})
	return nil
}

// historyAPIOptions gives the API the history and the data file to back up.
func (s *server) historyAPIOptions(o *controller.APIOptions) {
	o.History, o.Backup = s.hist, s.db
}

// runHistory writes and prunes the history in g until ctx ends.
func (s *server) runHistory(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error { return s.hist.Run(ctx) })
}

// flushHistory writes what is left when the server closes.
func (s *server) flushHistory() {
	if s.hist == nil {
		return
	}
	if err := s.hist.Flush(); err != nil {
		s.log.Error("write history", "err", err)
	}
	s.hist = nil
}
