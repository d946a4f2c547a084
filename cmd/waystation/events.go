package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/controller"
)

const eventsPath = "api/v1/events"

// eventsSilence is how long the stream may stay silent before the command
// takes it for dead and reconnects: the server sends a heartbeat every
// 15 seconds.
const eventsSilence = 50 * time.Second

// Reconnection delays of the events command.
const (
	eventsRetryMin = time.Second
	eventsRetryMax = 30 * time.Second
)

func addEventsCmd(root *cobra.Command) {
	var o clientOptions
	var count int
	var within time.Duration
	var station, typ string
	cmd := &cobra.Command{
		Use:   "events [--station S] [--type T] [-o json] [--count N] [--for D]",
		Short: "Follow the live stream of notices: alerts, commands, plans",
		Long: "events follows the server's live stream (GET /api/v1/events) and prints each\n" +
			"notice within your scope as it happens, one a line. -o json prints each notice\n" +
			"as one line of JSON, for jq and scripts. When the connection drops it reconnects\n" +
			"and gets what it missed; it says so when some of it is no longer kept.\n" +
			"--station keeps one station's notices; --type keeps one type (alert.raised)\n" +
			"or a family (alert).\n" +
			"--for stops following after that long (of this machine's clock); with --count,\n" +
			"fewer notices than asked for by then is an error, exit status 124.",
		Example: "  waystation events\n" +
			"  waystation events --station ys-001 --type alert\n" +
			"  waystation events --type command.acknowledged --count 1 --for 2m\n" +
			"  waystation events -o json | jq -c 'select(.type == \"alert.raised\")'",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if count < 0 {
				return fmt.Errorf("--count %d: want 0 (no end) or more", count)
			}
			if within < 0 {
				return fmt.Errorf("--for %v: want 0 (no end) or a duration, e.g. 30s", within)
			}
			query := url.Values{}
			if station != "" {
				if err := checkID("station", station); err != nil {
					return err
				}
				query.Set("station", station)
			}
			if typ = strings.TrimSpace(typ); typ != "" {
				query.Set("type", typ)
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()
			f := &follower{c: c, cmd: cmd, format: o.output, left: count, p: newPrinter(cmd, c),
				query: query}
			ctx := cmd.Context()
			if within > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, within)
				defer cancel()
			}
			if err := f.run(ctx); err != nil {
				return err
			}
			if count > 0 && f.left > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &exitError{code: exitTimedOut, err: fmt.Errorf("--for %v ended after %d "+
					"of the %d notices of --count", within, count-f.left, count)}
			}
			return nil
		},
	}
	addClientFlags(cmd, &o)
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many notices (0: follow until "+
		"interrupted)")
	cmd.Flags().DurationVar(&within, "for", 0, "stop following after this long (0: no end); "+
		"with --count, fewer notices by then exits with status 124")
	cmd.Flags().StringVar(&station, "station", "", "only this station's notices")
	cmd.Flags().StringVar(&typ, "type", "", `only notices of this type, or family ("alert")`)
	root.AddCommand(cmd)
}

// follower reads the event stream, reconnecting with the last event's id.
type follower struct {
	c      *client
	cmd    *cobra.Command
	format outputFormat
	p      *printer
	left   int    // notices still to print; 0 for no end
	lastID string // of the last event read
	query  url.Values
}

// errEnough ends the stream once --count notices are printed.
var errEnough = errors.New("enough notices")

// run follows the stream until ctx ends or --count notices are printed. A
// first connection that fails is an error; later ones are retried.
func (f *follower) run(ctx context.Context) error {
	delay := eventsRetryMin
	for connected := false; ; {
		got, err := f.stream(ctx)
		switch {
		case errors.Is(err, errEnough) || ctx.Err() != nil:
			return nil
		case !connected && !got:
			return err
		}
		var apiErr *apiError
		if errors.As(err, &apiErr) && apiErr.status != http.StatusServiceUnavailable {
			return err // a token or a permission: waiting will not fix it
		}
		connected = true
		if got {
			delay = eventsRetryMin
		}
		fmt.Fprintf(f.cmd.ErrOrStderr(), "waystation: lost the event stream (%v); reconnecting "+
			"in %v\n", err, delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, eventsRetryMax)
	}
}

// stream reads one connection of the stream until it ends; got says the
// server answered it.
func (f *follower) stream(ctx context.Context) (got bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := f.c.base.JoinPath(eventsPath)
	u.RawQuery = f.query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+f.c.token)
	req.Header.Set("Accept", "text/event-stream")
	if f.lastID != "" {
		req.Header.Set("Last-Event-ID", f.lastID)
	}

	// The client's own timeout would cut a stream that lasts: only the
	// answer's headers are waited for that long.
	hc := &http.Client{Transport: f.c.http.Transport}
	answered := time.AfterFunc(f.c.timeout, cancel)
	resp, err := hc.Do(req)
	if !answered.Stop() && err != nil {
		return false, fmt.Errorf("no answer from the server at %s within %v (raise --timeout, "+
			"or check the server)", f.c.base, f.c.timeout)
	}
	if err != nil {
		return false, f.c.unreachable(err)
	}
	defer resp.Body.Close()
	f.c.clock.observe(resp.Header)
	f.p.loc = f.c.clock.location() // notices are shown in the server's zone
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return false, newAPIError(resp.StatusCode, raw)
	}

	// A stream that falls silent past the heartbeat is dead.
	silent := time.AfterFunc(eventsSilence, cancel)
	defer silent.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxAnswerBytes)
	var id, name string
	var data []string
	for sc.Scan() {
		silent.Reset(eventsSilence)
		line := sc.Text()
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "":
			if len(data) > 0 {
				if err := f.event(name, strings.Join(data, "\n")); err != nil {
					return true, err
				}
				if id != "" {
					f.lastID = id
				}
			}
			name, data = "", nil
		case field == "id":
			id = value
		case field == "event":
			name = value
		case field == "data":
			data = append(data, value)
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return true, fmt.Errorf("read the stream: %w", err)
	}
	if ctx.Err() != nil && f.cmd.Context().Err() == nil {
		return true, fmt.Errorf("nothing from the server for %v", eventsSilence)
	}
	return true, errors.New("the server ended the stream")
}

// event prints one event of the stream.
func (f *follower) event(name, data string) error {
	if name == "gap" {
		fmt.Fprintln(f.cmd.ErrOrStderr(), "waystation: some events were missed and are no "+
			"longer kept; list the current state to catch up")
		return nil
	}
	if name != "" {
		return nil // a kind of event this version does not know
	}
	if f.format == outputJSON {
		if _, err := fmt.Fprintln(f.p.out, data); err != nil {
			return err
		}
	} else {
		var n controller.Notice
		if err := json.Unmarshal([]byte(data), &n); err != nil {
			return fmt.Errorf("read a notice off the stream: %w", err)
		}
		if _, err := fmt.Fprintln(f.p.out, f.line(n)); err != nil {
			return err
		}
	}
	if f.left > 0 {
		if f.left--; f.left == 0 {
			return errEnough
		}
	}
	return nil
}

// line shows a notice on one line: when, what, where, and its summary.
func (f *follower) line(n controller.Notice) string {
	cells := []string{f.p.when(n.At), pad(n.Type, 22), pad(orDash(n.Station), 10)}
	if s := summary(n.Data); s != "" {
		cells = append(cells, s)
	} else {
		cells = append(cells, n.Key)
	}
	return printable(strings.Join(cells, "  "))
}

// summary finds a line for people in a notice's data: its summary, title or
// message, when it has one.
func summary(data any) string {
	m, ok := data.(map[string]any)
	if !ok {
		return ""
	}
	for _, k := range []string{"summary", "title", "message"} {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// pad pads s with spaces to n display columns.
func pad(s string, n int) string {
	if w := displayWidth(s); w < n {
		return s + strings.Repeat(" ", n-w)
	}
	return s
}
