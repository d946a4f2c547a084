// Command waystation runs the rest-station device platform: the embedded MQTT
// broker, the controller and its HTTP API (serve), and the client commands
// that talk to a running server.
package main

import (
	"context"
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
		os.Exit(1)
	}
}
