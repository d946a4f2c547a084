package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"

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
	ids := make([]string, len(county))
	for i, c := range county {
		ids[i] = c.ID
	}
	if err := s.demoTimetable(ids); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var sc *simulators.Scenario
	if s.o.demoScenario != "" {
		if sc, err = simulators.LoadScenario(s.o.demoScenario); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	tokens, err := s.demoWorkers(county)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fleet, err := simulators.NewFleet(simulators.FleetOptions{
		Tokens:   tokens,
		Broker:   "tcp://" + loopback(s.mqtt.TCPAddr()),
		Devices:  specs,
		Seed:     s.o.demoSeed,
		Clock:    s.clock,
		Location: s.loc,
		Scenario: sc,
		// A resumed run plays what is left of the scenario, on its times.
		ScenarioStart: s.start,
		Logger:        slog.New(quietWhen{s.log.Handler(), &s.demoStopping}).With("component", "demo"),
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

// demoWorkersPerOrg is how many simulated workers carry a credential of
// each partner organisation.
const demoWorkersPerOrg = 12

// demoWorkers gives the simulated workers credentials the platform issued,
// so their visits at the door terminals are granted and counted. Tokens are
// stored only as hashes, so the demo keeps them in a file of its own
// (demo-workers.json, mode 0600) and issues new ones for an organisation
// whose tokens are missing or no longer valid.
func (s *server) demoWorkers(county []simulators.CountyStation) (map[string][]string, error) {
	file := filepath.Join(s.o.data, "demo-workers.json")
	byOrg := map[string][]string{}
	if buf, err := os.ReadFile(file); err == nil {
		if err := json.Unmarshal(buf, &byOrg); err != nil {
			s.log.Warn("demo workers file unreadable; issuing new credentials", "file", file,
				"err", err)
			byOrg = map[string][]string{}
		}
	}

	changed := false
	perStation := map[string][]string{}
	for _, st := range county {
		valid := byOrg[st.Org][:0:0]
		for _, tok := range byOrg[st.Org] {
			if cr, ok := s.acc.creds.Lookup(tok); ok && cr.Revoked.IsZero() {
				valid = append(valid, tok)
			}
		}
		for i := len(valid); i < demoWorkersPerOrg; i++ {
			tok, _, err := s.acc.creds.Issue(st.Org, fmt.Sprintf("demo worker %d", i+1), nil)
			if err != nil {
				return nil, err
			}
			valid = append(valid, tok)
			changed = true
		}
		byOrg[st.Org] = valid
		perStation[st.ID] = valid
	}
	if changed {
		buf, err := json.MarshalIndent(byOrg, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(file, buf, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", file, err)
		}
	}
	return perStation, nil
}

// quietWhen passes on only warnings and errors once *stopping is set: the
// demo's devices, cut off by the broker closing first at a stop, would
// otherwise each say that they lost their connection.
type quietWhen struct {
	slog.Handler
	stopping *atomic.Bool
}

func (q quietWhen) Enabled(ctx context.Context, l slog.Level) bool {
	if q.stopping.Load() && l < slog.LevelWarn {
		return false
	}
	return q.Handler.Enabled(ctx, l)
}

func (q quietWhen) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietWhen{q.Handler.WithAttrs(attrs), q.stopping}
}

func (q quietWhen) WithGroup(name string) slog.Handler {
	return quietWhen{q.Handler.WithGroup(name), q.stopping}
}
