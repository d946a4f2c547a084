// Command waystation runs the rest-station device platform: the embedded MQTT
// broker, the controller and its HTTP API (serve), and the client commands
// that talk to a running server.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	// Zone data in the binary: schedules and reports work on a machine
	// without system zone files.
	_ "time/tzdata"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "waystation:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// exitTimedOut is the exit status of a command whose time ran out before
// it got what it waited for, as timeout(1) has it.
const exitTimedOut = 124

// exitError is an error that ends the process with its own status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
