package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/schemas"
	"github.com/waystation/waystation/simulators"
)

// simulateOptions are the flags of `waystation simulate`.
type simulateOptions struct {
	broker        string
	stations      int
	registry      string
	speed         float64
	start         string
	scenario      string
	seed          int64
	timeZone      string
	duration      time.Duration
	progress      time.Duration
	accessTimeout time.Duration
	logLevel      string
	provision     bool
	client        clientOptions
}

func newSimulateCmd() *cobra.Command {
	o := simulateOptions{}
	cmd := &cobra.Command{
		Use:   "simulate --broker URL (--stations N | --registry FILE)",
		Short: "Run a fleet of simulated devices against an MQTT broker",
		Long: "simulate runs simulated door terminals, ACs, charger cabinets and AED cabinets\n" +
			"against any MQTT broker: the first N stations of a simulated county (--stations),\n" +
			"or the devices of a registry file (--registry). With --provision it first registers\n" +
			"the county's stations and devices through a server's API and writes their secrets\n" +
			"to the registry file. --speed 60 runs an hour a minute; --scenario plays a\n" +
			"scenario (a shipped one by name, or a YAML file).",
		Example: "  waystation simulate --provision --stations 129 --registry county.yaml \\\n" +
			"    --broker tcp://127.0.0.1:1883 --server http://127.0.0.1:8080\n" +
			"  waystation simulate --registry county.yaml --speed 60 --scenario bad-night",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.broker, "broker", "tcp://127.0.0.1:1883",
		"MQTT broker: tcp://, ws://, wss://, ssl:// or tls://")
	f.IntVar(&o.stations, "stations", 0, "run the first N stations of the simulated county")
	f.StringVar(&o.registry, "registry", "",
		"devices and secrets to run; with --provision, the file to write them to")
	f.Float64Var(&o.speed, "speed", 1, "simulated seconds per wall-clock second (60: an hour a minute)")
	f.StringVar(&o.start, "start", "", `simulated start, e.g. "2025-07-21 00:30" in --tz `+
		"(default: the scenario's start, else now)")
	f.StringVar(&o.scenario, "scenario", "", "scenario to play: "+joinNames(simulators.Scenarios())+
		", or a YAML file")
	f.Int64Var(&o.seed, "seed", 1, "seed of the county and of every simulated value")
	f.StringVar(&o.timeZone, "tz", "Asia/Shanghai", "time zone of the stations (IANA name)")
	f.DurationVar(&o.duration, "duration", 0,
		"stop after this much wall time (default: until interrupted)")
	f.DurationVar(&o.progress, "progress", 2*time.Second, "how often to print progress")
	f.DurationVar(&o.accessTimeout, "access-timeout", 2*time.Second,
		"how long a door terminal waits for the platform before its allow-list decides")
	f.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	f.BoolVar(&o.provision, "provision", false,
		"register the county's stations and devices on --server first and write --registry")
	addClientFlags(cmd, &o.client)
	cmd.AddCommand(newSimulateDeviceCmd())
	return cmd
}

// check refuses flags that do not make one clear run.
func (o *simulateOptions) check() error {
	switch {
	case o.provision && (o.stations <= 0 || o.registry == ""):
		return errors.New("--provision needs --stations N (the county to register) and " +
			"--registry FILE (where to write the secrets)")
	case !o.provision && o.stations > 0 && o.registry != "":
		return errors.New("give --stations or --registry, not both (or add --provision to " +
			"register the stations and write the registry)")
	case !o.provision && o.stations <= 0 && o.registry == "":
		return errors.New("give --stations N or --registry FILE")
	case o.stations > 999:
		return fmt.Errorf("--stations %d: want 1..999", o.stations)
	case o.speed < simulators.MinSpeed || o.speed > simulators.MaxSpeed:
		return fmt.Errorf("--speed %g: want %g to %g", o.speed, simulators.MinSpeed,
			simulators.MaxSpeed)
	case o.progress <= 0:
		return fmt.Errorf("--progress %v: want a positive duration", o.progress)
	case o.duration < 0:
		return fmt.Errorf("--duration %v: want a positive duration", o.duration)
	}
	return nil
}

func (o *simulateOptions) run(cmd *cobra.Command) error {
	if err := o.check(); err != nil {
		return err
	}
	log, err := newLogger(cmd.ErrOrStderr(), o.logLevel)
	if err != nil {
		return err
	}
	loc, err := time.LoadLocation(o.timeZone)
	if err != nil {
		return fmt.Errorf("--tz %q: %w", o.timeZone, err)
	}
	var sc *simulators.Scenario
	if o.scenario != "" {
		if sc, err = simulators.LoadScenario(o.scenario); err != nil {
			return err
		}
	}
	start, err := startTime(o.start, sc, loc)
	if err != nil {
		return err
	}
	out := &syncWriter{w: cmd.OutOrStdout()}

	specs, err := o.devices(cmd, out)
	if err != nil {
		return err
	}
	clock := simulators.NewClock(start, o.speed)
	fleet, err := simulators.NewFleet(simulators.FleetOptions{
		Broker:        o.broker,
		Devices:       specs,
		Seed:          o.seed,
		Clock:         clock,
		Location:      loc,
		Logger:        log.With("component", "simulate"),
		Scenario:      sc,
		AccessTimeout: o.accessTimeout,
		OnScenario: func(r simulators.ScenarioReport) {
			line := fmt.Sprintf("%s  scenario line %d: %s on %s", r.At.In(loc).Format(time.DateTime),
				r.Line, r.Action, r.Device)
			if r.Err != nil {
				line += ": failed: " + r.Err.Error()
			}
			out.println(line)
		},
	})
	if err != nil {
		return err
	}

	ctx := cmd.Context()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	out.println(fmt.Sprintf("simulating %d devices at %d stations against %s, from %s at %gx",
		len(specs), countStations(specs), o.broker, fleet.Start().In(loc).Format(time.DateTime),
		o.speed))

	wallStart := time.Now()
	done := make(chan error, 1)
	go func() { done <- fleet.Run(ctx) }()
	watchProgress(ctx, fleet, out, o.progress, loc)
	if err := <-done; err != nil {
		return err
	}
	return printSummary(cmd, o.client.output, fleet, loc, time.Since(wallStart))
}

// startTime picks the clock's start: --start, else the scenario's, else now.
func startTime(flag string, sc *simulators.Scenario, loc *time.Location) (time.Time, error) {
	if flag != "" {
		t, err := simulators.ParseTime(flag, loc)
		if err != nil {
			return time.Time{}, fmt.Errorf("--start: %w", err)
		}
		return t, nil
	}
	if sc != nil && !sc.Start.IsZero() {
		return sc.Start, nil
	}
	return time.Time{}, nil
}

// devices returns the specs to run: the county (registered first with
// --provision), or the registry file's.
func (o *simulateOptions) devices(cmd *cobra.Command, out *syncWriter) ([]simulators.DeviceSpec,
	error) {
	if o.provision {
		return o.provisionCounty(cmd, out)
	}
	if o.registry != "" {
		return simulators.ReadRegistry(o.registry)
	}
	return countySpecs(simulators.County(o.stations, o.seed), nil), nil
}

// countySpecs turns county stations into device specs with the given
// secrets (none when secrets is nil: for a broker that lets anyone in).
func countySpecs(county []simulators.CountyStation,
	secrets map[string]string) []simulators.DeviceSpec {
	var specs []simulators.DeviceSpec
	for _, st := range county {
		for _, d := range st.Devices {
			if secrets != nil && secrets[d.ID] == "" {
				continue
			}
			specs = append(specs, simulators.DeviceSpec{Station: st.ID, Device: d.ID, Kind: d.Kind,
				Model: d.Model, Secret: secrets[d.ID]})
		}
	}
	return specs
}

// provisionCounty registers the county's missing stations and devices on
// the server and writes every secret it has to the registry file. A device
// registered before keeps the secret the file already holds; one the file
// does not know is skipped, since the server cannot show its secret again.
func (o *simulateOptions) provisionCounty(cmd *cobra.Command, out *syncWriter) (
	[]simulators.DeviceSpec, error) {
	county := simulators.County(o.stations, o.seed)
	secrets := map[string]string{}
	if known, err := simulators.ReadRegistry(o.registry); err == nil {
		for _, s := range known {
			secrets[s.Device] = s.Secret
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}

	c, err := o.client.connect(cmd)
	if err != nil {
		return nil, err
	}
	defer c.close()
	ctx := cmd.Context()

	var haveStations []struct {
		ID string `json:"id"`
	}
	if err := getJSON(ctx, c, "api/v1/stations", nil, &haveStations); err != nil {
		return nil, fmt.Errorf("list stations: %w", err)
	}
	have := map[string]bool{}
	for _, s := range haveStations {
		have[s.ID] = true
	}
	var missing []map[string]any
	for _, st := range county {
		if !have[st.ID] {
			missing = append(missing, map[string]any{"id": st.ID, "name": st.Name,
				"address": st.Address, "lat": st.Lat, "lon": st.Lon, "org": st.Org, "hours": st.Hours})
		}
	}
	if len(missing) > 0 {
		if _, err := c.post(ctx, "api/v1/stations", missing); err != nil {
			return nil, fmt.Errorf("register stations: %w", err)
		}
	}
	out.println(fmt.Sprintf("stations: %d registered, %d there already", len(missing),
		len(county)-len(missing)))

	var haveDevices []controller.DeviceView
	if err := getJSON(ctx, c, "api/v1/devices", nil, &haveDevices); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	registered := map[string]bool{}
	for _, d := range haveDevices {
		registered[d.ID] = true
	}
	added, kept, skipped, total := 0, 0, 0, 0
	for _, st := range county {
		for _, d := range st.Devices {
			total++
			switch {
			case registered[d.ID] && secrets[d.ID] != "":
				kept++
			case registered[d.ID]:
				skipped++
				delete(secrets, d.ID)
			default:
				raw, err := c.post(ctx, devicesPath, map[string]any{"id": d.ID, "station": st.ID,
					"kind": d.Kind, "model": d.Model})
				if err != nil {
					return nil, fmt.Errorf("register device %s: %w", d.ID, err)
				}
				var nd controller.NewDevice
				if err := json.Unmarshal(raw, &nd); err != nil || nd.Secret == "" {
					return nil, fmt.Errorf("register device %s: no secret in the answer", d.ID)
				}
				secrets[d.ID] = nd.Secret
				added++
			}
			if total%50 == 0 {
				out.println(fmt.Sprintf("devices: %d of %d done", total, countDevices(county)))
			}
		}
	}
	specs := countySpecs(county, secrets)
	if err := simulators.WriteRegistry(o.registry, specs); err != nil {
		return nil, err
	}
	out.println(fmt.Sprintf("devices: %d registered, %d known from %s, %d skipped; secrets "+
		"written to %s (keep it private)", added, kept, o.registry, skipped, o.registry))
	if skipped > 0 {
		out.println(fmt.Sprintf("skipped %d devices registered before without a secret in %s: the "+
			"server cannot show a secret twice", skipped, o.registry))
	}
	if len(specs) == 0 {
		return nil, errors.New("no device to run: every one was registered before without its secret")
	}
	return specs, nil
}

// getJSON calls GET on the API and decodes the answer.
func getJSON(ctx context.Context, c *client, path string, q url.Values, v any) error {
	raw, err := c.get(ctx, path, q)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("read the server's answer: %w", err)
	}
	return nil
}

// watchProgress prints how the connecting goes until every device is
// connected, then a line whenever the count changes, until ctx ends.
func watchProgress(ctx context.Context, f *simulators.Fleet, out *syncWriter, every time.Duration,
	loc *time.Location) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	began := time.Now()
	all := false
	var last simulators.FleetStats
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if ctx.Err() != nil {
			return // stopping: the devices are leaving, which is no news
		}
		s := f.Stats()
		switch {
		case !all && s.Connected == s.Devices:
			all = true
			out.println(fmt.Sprintf("all %d devices connected after %v", s.Devices,
				time.Since(began).Round(100*time.Millisecond)))
		case !all:
			out.println(fmt.Sprintf("connecting: %d of %d connected, %d failing (%d failed attempts)",
				s.Connected, s.Devices, s.Failing, s.Failures))
		case s.Connected != last.Connected || s.Failures != last.Failures:
			out.println(fmt.Sprintf("%s  %d of %d connected, %d failing, %d messages sent",
				f.Clock().Now().In(loc).Format(time.DateTime), s.Connected, s.Devices, s.Failing, s.Sent))
		}
		last = s
	}
}

// simulateSummary is what a run did, printed at its end.
type simulateSummary struct {
	Devices        int       `json:"devices"`
	EverConnected  int       `json:"ever_connected"`
	ConnectedAtEnd int       `json:"connected_at_end"`
	Attempts       uint64    `json:"connection_attempts"`
	Failures       uint64    `json:"failed_attempts"`
	Drops          uint64    `json:"connections_lost"`
	Sent           uint64    `json:"messages_sent"`
	From           time.Time `json:"simulated_from"`
	To             time.Time `json:"simulated_to"`
	WallSeconds    float64   `json:"wall_seconds"`
}

func printSummary(cmd *cobra.Command, format outputFormat, f *simulators.Fleet, loc *time.Location,
	wall time.Duration) error {
	st := f.Stats()
	sum := simulateSummary{Devices: st.Devices, ConnectedAtEnd: st.Connected, Attempts: st.Attempts,
		Failures: st.Failures, Drops: st.Drops, Sent: st.Sent, From: f.Start().In(loc),
		To: f.Clock().Now().In(loc), WallSeconds: wall.Seconds()}
	for _, d := range f.Devices() {
		if d.Stats().Connects > 0 {
			sum.EverConnected++
		}
	}
	if format == outputJSON {
		raw, err := json.Marshal(sum)
		if err != nil {
			return err
		}
		return writeJSON(cmd.OutOrStdout(), raw)
	}
	p := newPrinter(cmd, nil)
	p.loc = loc
	return p.table([][]string{
		{"summary", ""},
		{"  devices", fmt.Sprint(sum.Devices)},
		{"  connected at some point", fmt.Sprint(sum.EverConnected)},
		{"  connection attempts", fmt.Sprintf("%d (%d failed)", sum.Attempts, sum.Failures)},
		{"  connections lost", fmt.Sprint(sum.Drops)},
		{"  messages sent", fmt.Sprint(sum.Sent)},
		{"  simulated", fmt.Sprintf("%s to %s", p.when(sum.From), p.when(sum.To))},
		{"  wall time", wall.Round(100 * time.Millisecond).String()},
	})
}

// syncWriter serialises lines from several goroutines onto one writer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) println(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintln(s.w, line)
}

func countStations(specs []simulators.DeviceSpec) int {
	seen := map[string]bool{}
	for _, s := range specs {
		seen[s.Station] = true
	}
	return len(seen)
}

func countDevices(county []simulators.CountyStation) int {
	n := 0
	for _, st := range county {
		n += len(st.Devices)
	}
	return n
}

func joinNames(names []string) string { return strings.Join(names, ", ") }

// simulateDeviceOptions are the flags of `waystation simulate device`.
type simulateDeviceOptions struct {
	kind, station, id, secret string
	broker                    string
	model, firmware           string
	interval                  time.Duration
	speed                     float64
	start                     string
	seed                      int64
	timeZone                  string
	logLevel                  string
}

// envDeviceSecret holds a device secret, so it stays out of the process list.
const envDeviceSecret = "WAYSTATION_DEVICE_SECRET"

func newSimulateDeviceCmd() *cobra.Command {
	o := simulateDeviceOptions{}
	cmd := &cobra.Command{
		Use:   "device --kind K --station S --id D --secret X --broker URL",
		Short: "Be one device: show what it sends and receives, take commands on stdin",
		Long: "device runs one simulated device with the given identity and prints every\n" +
			"message it sends (out) and receives (in). Lines on stdin act on it:\n\n" +
			deviceHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.kind, "kind", "", "lock, ac, charger or aed")
	f.StringVar(&o.station, "station", "", "station id")
	f.StringVar(&o.id, "id", "", "device id, also the MQTT username and client id")
	f.StringVar(&o.secret, "secret", "", "the device's MQTT secret (or $"+envDeviceSecret+")")
	f.StringVar(&o.broker, "broker", "tcp://127.0.0.1:1883", "MQTT broker")
	f.StringVar(&o.model, "model", "", "model reported in the status")
	f.StringVar(&o.firmware, "firmware", "", "firmware reported in the status")
	f.DurationVar(&o.interval, "interval", 0, "telemetry period (default: the kind's)")
	f.Float64Var(&o.speed, "speed", 1, "simulated seconds per wall-clock second")
	f.StringVar(&o.start, "start", "", "simulated start (default now)")
	f.Int64Var(&o.seed, "seed", 1, "seed of the simulated values")
	f.StringVar(&o.timeZone, "tz", "Asia/Shanghai", "time zone of the station (IANA name)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	for _, name := range []string{"kind", "station", "id"} {
		_ = cmd.MarkFlagRequired(name) // fails only for a flag that does not exist
	}
	return cmd
}

// deviceHelp lists what `simulate device` reads on stdin.
const deviceHelp = `  report            publish telemetry now
  fault CODE        ac: raise a fault code (clear ends it)
  jam               lock: the bolt jams
  force             lock: the door is forced open
  open / close      lock: someone walks out; aed: the cabinet opens / closes
  overheat N        charger: slot N is cut for heat
  runaway N         charger: the battery in slot N runs away
  mains off|on      charger: mains lost / back
  battery PCT       lock, aed: set the battery charge
  pads YYYY-MM-DD   aed: set the pads' expiry date
  selftest          aed: fail a self-test now and every night until clear
  clear             end every fault
  cut [DURATION]    power cut: dark for DURATION (default 30s), then boot
  drop [DURATION]   link down for DURATION (default: reconnect at once)
  status            connection and counts
  help              this list
  quit              go offline cleanly and stop`

func (o *simulateDeviceOptions) run(cmd *cobra.Command) error {
	log, err := newLogger(cmd.ErrOrStderr(), o.logLevel)
	if err != nil {
		return err
	}
	loc, err := time.LoadLocation(o.timeZone)
	if err != nil {
		return fmt.Errorf("--tz %q: %w", o.timeZone, err)
	}
	if o.speed < simulators.MinSpeed || o.speed > simulators.MaxSpeed {
		return fmt.Errorf("--speed %g: want %g to %g", o.speed, simulators.MinSpeed,
			simulators.MaxSpeed)
	}
	start, err := startTime(o.start, nil, loc)
	if err != nil {
		return err
	}
	secret := o.secret
	if !cmd.Flags().Changed("secret") {
		secret = os.Getenv(envDeviceSecret)
	}

	out := &syncWriter{w: cmd.OutOrStdout()}
	clock := simulators.NewClock(start, o.speed)
	spec := simulators.DeviceSpec{Station: o.station, Device: o.id,
		Kind: schemas.Kind(o.kind), Secret: secret, Model: o.model, Firmware: o.firmware,
		Interval: o.interval}
	d := simulators.NewDevice(spec, simulators.DeviceOptions{
		Broker:   o.broker,
		Seed:     o.seed,
		Clock:    clock,
		Location: loc,
		Logger:   log.With("component", "simulate"),
		Trace: func(sent bool, topic string, payload []byte) {
			dir, ch := "in ", topic
			if sent {
				dir = "out"
			}
			if t, err := schemas.ParseTopic(topic); err == nil {
				ch = string(t.Channel)
			}
			out.println(fmt.Sprintf("%s %s %-10s %s", clock.Now().In(loc).Format(time.TimeOnly), dir,
				ch, payload))
		},
	})

	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	lines := make(chan string)
	go readLines(ctx, cmd.InOrStdin(), lines)
	out.println(fmt.Sprintf("device %s (%s) at station %s against %s; type help for commands",
		o.id, o.kind, o.station, o.broker))
	for {
		select {
		case err := <-done:
			return err
		case line, ok := <-lines:
			if !ok || isQuit(line) {
				cancel()
				return <-done
			}
			if reply := deviceCommand(d, line, loc); reply != "" {
				out.println(reply)
			}
		}
	}
}

// readLines sends each line of r to lines, and closes it at the end of r.
// It stops early when ctx ends, once the read it is blocked in returns.
func readLines(ctx context.Context, r io.Reader, lines chan<- string) {
	defer close(lines)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		select {
		case lines <- sc.Text():
		case <-ctx.Done():
			return
		}
	}
}

func isQuit(line string) bool {
	w := strings.Fields(line)
	return len(w) == 1 && (w[0] == "quit" || w[0] == "exit")
}

// deviceCommand carries out one line of stdin and returns the reply.
func deviceCommand(d *simulators.Device, line string, loc *time.Location) string {
	w := strings.Fields(line)
	if len(w) == 0 {
		return ""
	}
	arg := func(i int) string {
		if i < len(w) {
			return w[i]
		}
		return ""
	}
	num := func(i int) (float64, error) {
		f, err := strconv.ParseFloat(arg(i), 64)
		if err != nil {
			return 0, fmt.Errorf("%s wants a number", w[0])
		}
		return f, nil
	}
	dur := func(i int, def time.Duration) (time.Duration, error) {
		if arg(i) == "" {
			return def, nil
		}
		v, err := time.ParseDuration(arg(i))
		if err != nil || v < 0 {
			return 0, fmt.Errorf("%s wants a duration such as 30s or 5m", w[0])
		}
		return v, nil
	}

	var err error
	switch w[0] {
	case "help":
		return deviceHelp
	case "status":
		st := d.Stats()
		state := "offline"
		if d.Connected() {
			state = "online, conn " + d.Conn()
		}
		return fmt.Sprintf("%s; %s", state, st)
	case "report":
		d.ReportNow()
	case "fault":
		if arg(1) == "" {
			return "error: fault wants a code, e.g. fault E4"
		}
		err = d.SetFault(arg(1))
	case "jam":
		err = d.Jam()
	case "force":
		err = d.ForceDoor()
	case "open":
		if d.Spec().Kind == schemas.KindAED {
			err = d.OpenCabinet()
		} else {
			err = d.OpenDoor()
		}
	case "close":
		err = d.CloseCabinet()
	case "overheat", "runaway":
		var n float64
		if n, err = num(1); err == nil {
			if w[0] == "overheat" {
				err = d.Overheat(int(n))
			} else {
				err = d.Runaway(int(n))
			}
		}
	case "mains":
		switch arg(1) {
		case "off":
			err = d.SetMains(false)
		case "on":
			err = d.SetMains(true)
		default:
			return "error: mains off or mains on"
		}
	case "battery":
		var pct float64
		if pct, err = num(1); err == nil {
			err = d.SetBattery(pct)
		}
	case "pads":
		var t time.Time
		if t, err = time.ParseInLocation(time.DateOnly, arg(1), loc); err != nil {
			return "error: pads wants a date, e.g. pads 2026-08-31"
		}
		err = d.SetPadsExpire(t)
	case "selftest":
		err = d.FailSelfTest()
	case "clear":
		err = d.Clear()
	case "cut":
		var v time.Duration
		if v, err = dur(1, 30*time.Second); err == nil {
			err = d.PowerCut(v)
		}
	case "drop":
		var v time.Duration
		if v, err = dur(1, 0); err == nil {
			if v == 0 {
				err = d.DropConnection()
			} else {
				err = d.LinkDown(v)
			}
		}
	default:
		return fmt.Sprintf("error: unknown command %q; type help", w[0])
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return "ok"
}
