package probe_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/waystation/waystation/simulators/probe"
)

// Probe a door terminal for two minutes through the platform's broker,
// logged in as the controller, and print the report.
func ExampleRun() {
	rep, err := probe.Run(context.Background(), probe.Options{
		Broker:   "tcp://127.0.0.1:1883",
		Username: "waystation.controller",
		Password: os.Getenv("WAYSTATION_CONTROLLER_SECRET"),
		Device:   "ys-001-lock",
		Duration: 2 * time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := rep.WriteText(os.Stdout); err != nil {
		log.Fatal(err)
	}
	if rep.Failed() {
		os.Exit(1)
	}
}
