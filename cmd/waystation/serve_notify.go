package main

import (
	"context"

	"golang.org/x/sync/errgroup"

	"github.com/waystation/waystation/controller"
)

// notifyParts tell people what changes: the live event stream of the
// console and the CLI (GET /api/v1/events).
type notifyParts struct {
	events *controller.Events
}

// openNotify builds the notifiers and sets s.notify, the fan-out that
// alerts, commands and plans are handed. It runs before any part that
// notifies is opened.
func (s *server) openNotify() error {
	var err error
	n := &s.nt
	n.events, err = controller.NewEvents(controller.EventsOptions{
		Registry: s.devs, Logger: s.log, Registerer: s.reg,
	})
	if err != nil {
		return err
	}
	s.notify = append(s.notify, n.events)
	return nil
}

// apiOptions gives the API the event stream.
func (n *notifyParts) apiOptions(o *controller.APIOptions) {
	o.Events = n.events
}

// runNotify runs the notifiers in g until ctx ends. The event stream ends
// its open streams then, so the HTTP server's shutdown does not wait on
// them.
func (s *server) runNotify(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error { return s.nt.events.Run(ctx) })
}
