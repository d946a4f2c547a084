package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/controller"
)

// runCLIContext is runCLI until ctx ends, with stdout and stderr apart.
func runCLIContext(ctx context.Context, stdout, stderr *syncBuffer, args ...string) error {
	cmd := newRootCmd()
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

func TestEventsCommand(t *testing.T) {
	ts := startServer(t, nil)
	st := map[string]any{"id": "ys-001", "name": "Test", "lat": 32.6, "lon": 116.3, "hours": "24h"}
	if code := ts.api(t, "POST", "/api/v1/stations", st, nil); code != 201 {
		t.Fatalf("add station: %d", code)
	}
	at := time.Date(2025, 7, 20, 3, 4, 5, 0, time.UTC)
	notices := []controller.Notice{
		{Type: "alert.raised", Key: "a1.raised", Station: "ys-001", At: at,
			Data: map[string]any{"summary": "AED taken: possible cardiac arrest at ys-001"}},
		{Type: "command.acknowledged", Key: "c7.ack", Station: "ys-001", At: at,
			Data: map[string]any{"id": "c7"}},
	}

	for _, tc := range []struct {
		name string
		args []string
		want [][]string // words each line holds
	}{
		{"json", []string{"-o", "json"}, [][]string{{`"key":"a1.raised"`, `"station":"ys-001"`},
			{`"type":"command.acknowledged"`, `"id":"c7"`}}},
		// In the server's zone (Asia/Shanghai), whatever this machine's.
		{"table", nil, [][]string{{"2025-07-20 11:04:05 +08:00", "alert.raised", "ys-001", "AED taken"},
			{"command.acknowledged", "ys-001", "c7.ack"}}},
		{"filtered", []string{"--station", "ys-001", "--type", "command", "--count", "1"},
			[][]string{{"command.acknowledged", "c7.ack"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errs syncBuffer
			done := make(chan error, 1)
			args := append([]string{"events", "--count", "2", "--server", ts.url, "--token", ts.token},
				tc.args...)
			go func() { done <- runCLIContext(context.Background(), &out, &errs, args...) }()
			eventually(t, 5*time.Second, "the command subscribed", func() bool {
				return ts.metric(t, "waystation_events_subscribers") == 1
			})
			for _, n := range notices {
				ts.s.notify.Notify(n)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("events: %v\n%s", err, errs.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("events did not stop after --count notices")
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("want 2 lines, got:\n%s", out.String())
			}
			for i, words := range tc.want {
				for _, w := range words {
					if !strings.Contains(lines[i], w) {
						t.Fatalf("line %d %q lacks %q", i, lines[i], w)
					}
				}
				if tc.name == "json" && !json.Valid([]byte(lines[i])) {
					t.Fatalf("line %d is not JSON: %s", i, lines[i])
				}
			}
			eventually(t, 5*time.Second, "the stream closed", func() bool {
				return ts.metric(t, "waystation_events_subscribers") == 0
			})
		})
	}
}

// TestEventsCommandOutlivesTheServer: a follower keeps trying when the
// server goes away, and stops cleanly when interrupted; a wrong token is an
// error at once.
func TestEventsCommandOutlivesTheServer(t *testing.T) {
	ts := startServer(t, nil)
	var out, errs syncBuffer
	if err := runCLIContext(context.Background(), &out, &errs, "events", "--server", ts.url,
		"--token", "wst_nope"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runCLIContext(ctx, &out, &errs, "events", "--server", ts.url, "--token", ts.token)
	}()
	eventually(t, 5*time.Second, "the command subscribed", func() bool {
		return ts.metric(t, "waystation_events_subscribers") == 1
	})
	ts.stop(t)
	eventually(t, 5*time.Second, "the command says it lost the stream", func() bool {
		return strings.Contains(errs.String(), "lost the event stream")
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("events did not stop when interrupted")
	}
}

// TestEventsFor: --for ends the following; with --count, too few notices
// by then is an error of its own exit status, said in words.
func TestEventsFor(t *testing.T) {
	ts := startServer(t, nil)
	base := []string{"events", "--server", ts.url, "--token", ts.token}

	var out, errs syncBuffer
	if err := runCLIContext(context.Background(), &out, &errs,
		append(base, "--for", "-1s")...); err == nil || !strings.Contains(err.Error(), "--for") {
		t.Fatalf("--for -1s: %v", err)
	}

	// Without --count: follow that long, then stop without an error.
	start := time.Now()
	if err := runCLIContext(context.Background(), &out, &errs,
		append(base, "--for", "300ms")...); err != nil {
		t.Fatalf("--for 300ms: %v\n%s", err, errs.String())
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("--for 300ms returned after %v", took)
	}

	// With --count 2 and one notice: an error once --for is over.
	done := make(chan error, 1)
	go func() {
		done <- runCLIContext(context.Background(), &out, &errs,
			append(base, "--count", "2", "--for", "2s")...)
	}()
	eventually(t, 5*time.Second, "the command subscribed", func() bool {
		return ts.metric(t, "waystation_events_subscribers") == 1
	})
	ts.s.notify.Notify(controller.Notice{Type: "alert.raised", Key: "only-one", Station: "ys-001",
		At: time.Now()})
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("events --for 2s did not stop")
	}
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitTimedOut ||
		!strings.Contains(err.Error(), "--for 2s ended after 1 of the 2 notices") {
		t.Fatalf("want exit status %d and a clear message, got %v", exitTimedOut, err)
	}
	if !strings.Contains(out.String(), "only-one") {
		t.Errorf("the notice that came was not printed:\n%s", out.String())
	}
	eventually(t, 5*time.Second, "the stream closed", func() bool {
		return ts.metric(t, "waystation_events_subscribers") == 0
	})
}
