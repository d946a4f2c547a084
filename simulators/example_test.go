package simulators_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/waystation/waystation/schemas"
	"github.com/waystation/waystation/simulators"
)

// A station of four devices against a local broker; after a minute its
// AED cabinet is opened, the most urgent thing the platform ever hears.
func ExampleNewFleet() {
	specs := []simulators.DeviceSpec{
		{Station: "ys-001", Device: "ys-001-lock", Kind: schemas.KindLock, Secret: "s1"},
		{Station: "ys-001", Device: "ys-001-ac", Kind: schemas.KindAC, Secret: "s2"},
		{Station: "ys-001", Device: "ys-001-chg", Kind: schemas.KindCharger, Secret: "s3"},
		{Station: "ys-001", Device: "ys-001-aed", Kind: schemas.KindAED, Secret: "s4"},
	}
	fleet, err := simulators.NewFleet(simulators.FleetOptions{
		Broker:  "tcp://127.0.0.1:1883",
		Devices: specs,
		Seed:    1,
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-time.After(time.Minute):
			if err := fleet.Device("ys-001-aed").OpenCabinet(); err != nil {
				log.Print(err)
			}
		}
	}()
	if err := fleet.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// A scenario file is checked whole; each problem names its line.
func ExampleParseScenario() {
	_, err := simulators.ParseScenario("night.yaml", []byte(`events:
  - at: "02:00"
    station: ys-004
    do: power_loss
  - at: "25:00"
    device: ys-002-aed
    do: cabinet_open
`))
	fmt.Println(err)
	// Output:
	// night.yaml:2: event 1: power_loss needs for
	// night.yaml:5: at "25:00": want HH:MM, +DURATION, or a date and time
}

// A county's night at sixty times the wall clock, with the bad night
// played on it.
func ExampleNewClock() {
	sc, err := simulators.LoadScenario("bad-night")
	if err != nil {
		log.Fatal(err)
	}
	var specs []simulators.DeviceSpec
	for _, st := range simulators.County(9, 1) {
		for _, d := range st.Devices {
			specs = append(specs, simulators.DeviceSpec{Station: st.ID, Device: d.ID, Kind: d.Kind})
		}
	}
	fleet, err := simulators.NewFleet(simulators.FleetOptions{
		Broker:   "tcp://127.0.0.1:1883",
		Devices:  specs,
		Clock:    simulators.NewClock(sc.Start, 60),
		Scenario: sc,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // 00:30 to 05:30
	defer cancel()
	if err := fleet.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
