package simulators_test

import (
	"context"
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
