package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/waystation/waystation/controller"
)

// notifyFlags are the flags of serve for telling people: webhooks.
type notifyFlags struct {
	webhooks   []string
	timeout    time.Duration
	retryMax   time.Duration
	maxAge     time.Duration
	maxPending int
	secretFile string // signs requests when set
}

func addNotifyFlags(f *pflag.FlagSet, o *notifyFlags) {
	f.StringArrayVar(&o.webhooks, "webhook", nil, "POST every notice (alerts, commands, plans) "+
		"as JSON to this URL; repeat for more receivers")
	f.DurationVar(&o.timeout, "webhook-timeout", controller.DefaultWebhookTimeout,
		"how long one webhook request may take")
	f.DurationVar(&o.retryMax, "webhook-retry-max", controller.DefaultWebhookRetryMax,
		"the longest wait between attempts at a failing webhook receiver")
	f.DurationVar(&o.maxAge, "webhook-max-age", controller.DefaultWebhookMaxAge,
		"a notice not delivered within this long is given up")
	f.IntVar(&o.maxPending, "webhook-max-pending", controller.DefaultWebhookMaxPending,
		"notices kept for a receiver that is down; past it the oldest are dropped")
	f.StringVar(&o.secretFile, "webhook-secret-file", "", "sign webhook requests with the "+
		"secret in this file (header "+controller.SignatureHeader+")")
}

// check refuses a bad receiver URL or limit at start-up; zero values
// (options built in code) take the defaults.
func (o *notifyFlags) check() error {
	for _, u := range o.webhooks {
		if _, err := controller.ParseWebhookURL(u); err != nil {
			return fmt.Errorf("--webhook: %w", err)
		}
	}
	switch {
	case o.timeout < 0 || o.timeout > 10*time.Minute:
		return fmt.Errorf("--webhook-timeout %v: want up to 10m, e.g. 10s", o.timeout)
	case o.retryMax < 0 || (o.retryMax > 0 && o.retryMax < controller.DefaultWebhookRetryMin):
		return fmt.Errorf("--webhook-retry-max %v: want %v or more, e.g. 5m", o.retryMax,
			controller.DefaultWebhookRetryMin)
	case o.maxAge < 0:
		return fmt.Errorf("--webhook-max-age %v: want a positive duration, e.g. 24h", o.maxAge)
	case o.maxPending < 0 || o.maxPending > 10_000_000:
		return fmt.Errorf("--webhook-max-pending %d: want 1 to 10000000", o.maxPending)
	case o.secretFile != "" && len(o.webhooks) == 0:
		return errors.New("--webhook-secret-file needs --webhook")
	}
	return nil
}

// secret reads the signing secret; nil without --webhook-secret-file.
func (o *notifyFlags) secret() ([]byte, error) {
	if o.secretFile == "" {
		return nil, nil
	}
	buf, err := os.ReadFile(o.secretFile)
	if err != nil {
		return nil, fmt.Errorf("--webhook-secret-file: %w", err)
	}
	secret := bytes.TrimSpace(buf)
	if len(secret) < controller.MinWebhookSecret {
		return nil, fmt.Errorf("--webhook-secret-file %s: the secret has %d bytes; want at "+
			"least %d (e.g. openssl rand -hex 32 > %s)", o.secretFile, len(secret),
			controller.MinWebhookSecret, o.secretFile)
	}
	return secret, nil
}

// notifyParts tell people what changes: the live event stream of the
// console and the CLI (GET /api/v1/events), and webhooks when configured.
type notifyParts struct {
	events *controller.Events
	hooks  *controller.Webhooks // nil without --webhook
}

// openNotify builds the notifiers and sets s.notify, the fan-out that
// alerts, commands and plans are handed: it runs before any part that
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

	f := s.o.notify
	if len(f.webhooks) == 0 {
		return nil
	}
	secret, err := f.secret()
	if err != nil {
		return err
	}
	n.hooks, err = controller.NewWebhooks(controller.WebhooksOptions{
		DB: s.db, URLs: f.webhooks, Timeout: f.timeout, RetryMax: f.retryMax, MaxAge: f.maxAge,
		MaxPending: f.maxPending, Secret: secret, Now: s.clock.Now, Logger: s.log,
		Registerer: s.reg,
	})
	if err != nil {
		return err
	}
	s.notify = append(s.notify, n.hooks)
	return nil
}

// apiOptions gives the API the event stream.
func (n *notifyParts) apiOptions(o *controller.APIOptions) {
	o.Events = n.events
}

// runNotify runs the notifiers in g until ctx ends. The event stream ends
// its open streams then, so the HTTP server's shutdown does not wait on
// them; webhooks write what waits to the outbox for the next start.
func (s *server) runNotify(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error { return s.nt.events.Run(ctx) })
	if s.nt.hooks != nil {
		g.Go(func() error { return s.nt.hooks.Run(ctx) })
	}
}
