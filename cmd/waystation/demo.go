package main

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/simulators"
)

// runDemo registers the simulated county (what is missing of it) and runs
// its devices against the embedded broker until ctx ends.
func (s *server) runDemo(ctx context.Context) error {
	county := simulators.County(s.o.demoStations, s.o.demoSeed)
	specs, err := s.registerCounty(county)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var sc *simulators.Scenario
	if s.o.demoScenario != "" {
		if sc, err = simulators.LoadScenario(s.o.demoScenario); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	fleet, err := simulators.NewFleet(simulators.FleetOptions{
		Broker:   "tcp://" + loopback(s.mqtt.TCPAddr()),
		Devices:  specs,
		Seed:     s.o.demoSeed,
		Clock:    s.clock,
		Location: s.loc,
		Scenario: sc,
		Logger:   s.log.With("component", "demo"),
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	s.log.Info("demo county running", "stations", len(county), "devices", len(specs))
	return fleet.Run(ctx)
}

// registerCounty adds the county's missing stations and devices and gives
// every simulated device a fresh secret.
func (s *server) registerCounty(county []simulators.CountyStation) ([]simulators.DeviceSpec, error) {
	var missing []devices.Station
	for _, c := range county {
		if _, err := s.devs.Station(c.ID); errors.Is(err, devices.ErrNotFound) {
			missing = append(missing, devices.Station{ID: c.ID, Name: c.Name, Address: c.Address,
				Lat: c.Lat, Lon: c.Lon, Org: c.Org, Hours: c.Hours})
		}
	}
	if len(missing) > 0 {
		if err := s.devs.AddStations(missing); err != nil {
			return nil, err
		}
	}

	var list []devices.Device
	for _, c := range county {
		for _, d := range c.Devices {
			list = append(list, devices.Device{ID: d.ID, Station: c.ID, Kind: d.Kind, Model: d.Model})
		}
	}
	secrets, err := s.devs.Provision(list)
	if err != nil {
		return nil, err
	}
	specs := make([]simulators.DeviceSpec, 0, len(list))
	for _, d := range list {
		specs = append(specs, simulators.DeviceSpec{Station: d.Station, Device: d.ID, Kind: d.Kind,
			Secret: secrets[d.ID], Model: d.Model, Firmware: "1.4.2"})
	}
	return specs, nil
}

// loopback turns a listen address such as ":1883" into one to dial.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
