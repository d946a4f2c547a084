package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
	"github.com/waystation/waystation/simulators/loadgen"
)

// loadgenOptions are the flags of `waystation loadgen`.
type loadgenOptions struct {
	suites        []string
	targets       []string
	devices       int
	duration      time.Duration
	qos           []int
	latencyRate   float64
	fleetDevices  int
	fleetInterval time.Duration
	fleetHold     time.Duration
	mosquitto     string
	server        string // the waystation binary to measure; default this one
	dir           string
	profile       bool
	memoryLimit   string // GOMEMLIMIT of the platform's process; "" for none
	format        outputFormat
}

func newLoadgenCmd() *cobra.Command {
	o := loadgenOptions{format: outputTable}
	cmd := &cobra.Command{
		Use:   "loadgen",
		Short: "Measure the platform under load, side by side with Mosquitto",
		Long: "loadgen starts Mosquitto and `waystation serve` as processes of their own on\n" +
			"loopback ports and drives each with the same load of simulated devices\n" +
			"publishing telemetry with their send time in the payload:\n\n" +
			"  ingest   devices publishing as fast as they can, QoS 0 and 1: messages a second\n" +
			"           through the platform's whole pipeline (received, decoded, twin updated)\n" +
			"           against what Mosquitto relays to one plain subscriber;\n" +
			"  latency  the same devices at a fixed rate: from the payload's timestamp to the\n" +
			"           twin updated (the platform's waystation_telemetry_delay_seconds), against\n" +
			"           Mosquitto's delivery to the subscriber;\n" +
			"  fleet    many devices each reporting every interval: time to connect them all,\n" +
			"           the server's CPU and its resident memory per device, from /proc.\n\n" +
			"Every figure of the platform is printed with its ratio to Mosquitto's.",
		Example: "  waystation loadgen --suites ingest,latency --devices 1000 --duration 10s\n" +
			"  waystation loadgen --suites fleet --fleet-devices 10000",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.suites, "suites", []string{"ingest", "latency", "fleet"},
		"what to measure: ingest, latency, fleet")
	f.StringSliceVar(&o.targets, "targets", []string{"mosquitto", "waystation"},
		"what to put under load: mosquitto, waystation (ratios need both)")
	f.IntVar(&o.devices, "devices", 1000, "devices of the ingest and latency runs")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "length of each ingest and latency run")
	f.IntSliceVar(&o.qos, "qos", []int{0, 1}, "QoS levels of the ingest runs")
	f.Float64Var(&o.latencyRate, "latency-rate", 20000, "messages a second of the latency run")
	f.IntVar(&o.fleetDevices, "fleet-devices", 10000, "devices of the fleet run")
	f.DurationVar(&o.fleetInterval, "fleet-interval", 10*time.Second,
		"how often each device of the fleet reports")
	f.DurationVar(&o.fleetHold, "fleet-hold", 40*time.Second,
		"how long the fleet reports once connected (CPU is measured after one interval)")
	f.StringVar(&o.mosquitto, "mosquitto", "/usr/sbin/mosquitto", "Mosquitto binary (the reference)")
	f.StringVar(&o.server, "server-bin", "", "waystation binary to measure (default: this one)")
	f.StringVar(&o.dir, "dir", "", "folder for data files, logs and profiles (default: a "+
		"temporary one, removed afterwards)")
	f.BoolVar(&o.profile, "profile", false, "write a CPU profile of the server during each "+
		"ingest run, and a CPU profile and an execution trace during the latency run, "+
		"to --dir (server-cpu-qosN.pprof, server-cpu-latency.pprof, server-trace-latency.out)")
	f.StringVar(&o.memoryLimit, "server-memory-limit", "", "run the platform with this "+
		"GOMEMLIMIT (e.g. 400MiB): the Go runtime then gives memory back sooner")
	f.VarP(&o.format, "output", "o", "table or json")
	return cmd
}

func (o *loadgenOptions) check() error {
	for _, s := range o.suites {
		if s != "ingest" && s != "latency" && s != "fleet" {
			return fmt.Errorf("--suites: %q: want ingest, latency or fleet", s)
		}
	}
	for _, t := range o.targets {
		if t != "mosquitto" && t != "waystation" {
			return fmt.Errorf("--targets: %q: want mosquitto or waystation", t)
		}
	}
	for _, q := range o.qos {
		if q != 0 && q != 1 {
			return fmt.Errorf("--qos %d: want 0 or 1", q)
		}
	}
	switch {
	case o.devices < 1 || o.devices > loadgen.MaxDevices:
		return fmt.Errorf("--devices %d: want 1..%d", o.devices, loadgen.MaxDevices)
	case o.fleetDevices < 1 || o.fleetDevices > loadgen.MaxDevices:
		return fmt.Errorf("--fleet-devices %d: want 1..%d", o.fleetDevices, loadgen.MaxDevices)
	case o.duration <= 0 || o.duration > loadgen.MaxDuration:
		return fmt.Errorf("--duration %v: want up to %v", o.duration, loadgen.MaxDuration)
	case o.fleetHold <= o.fleetInterval || o.fleetHold > loadgen.MaxDuration:
		return fmt.Errorf("--fleet-hold %v: want more than --fleet-interval, up to %v",
			o.fleetHold, loadgen.MaxDuration)
	case o.fleetInterval <= 0:
		return fmt.Errorf("--fleet-interval %v: want a positive duration", o.fleetInterval)
	case o.latencyRate <= 0 || o.latencyRate > 1e6:
		return fmt.Errorf("--latency-rate %g: want up to 1000000", o.latencyRate)
	case o.profile && o.dir == "":
		return errors.New("--profile needs --dir, where the profiles are kept")
	}
	if _, err := os.Stat(o.mosquitto); err != nil {
		return fmt.Errorf("--mosquitto: %w (apt-get install -y mosquitto)", err)
	}
	return nil
}

func (o *loadgenOptions) has(suite string) bool { return slices.Contains(o.suites, suite) }

// benchRow is one figure of the report.
type benchRow struct {
	Suite      string  `json:"suite"`
	Measure    string  `json:"measure"`
	Unit       string  `json:"unit"`
	Waystation float64 `json:"waystation"`
	Mosquitto  float64 `json:"mosquitto"`
	Ratio      float64 `json:"ratio"` // waystation / mosquitto; 0 when not comparable
	Target     string  `json:"target,omitempty"`
	Met        *bool   `json:"met,omitempty"`
	Note       string  `json:"note,omitempty"`
}

func (o *loadgenOptions) run(ctx context.Context, out, logw io.Writer) (err error) {
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "waystation-loadgen-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bin := o.server
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return err
		}
	}
	defer http.DefaultClient.CloseIdleConnections()
	say := func(format string, args ...any) {
		fmt.Fprintf(logw, "loadgen: "+format+"\n", args...)
	}
	var rows []benchRow
	if o.has("ingest") || o.has("latency") {
		r, err := o.runIngest(ctx, bin, dir, say)
		rows = append(rows, r...)
		if err != nil {
			return err
		}
	}
	if o.has("fleet") {
		r, err := o.runFleet(ctx, bin, dir, say)
		rows = append(rows, r...)
		if err != nil {
			return err
		}
	}
	if o.format == outputJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	return printBench(out, rows)
}

// target is a broker under load: Mosquitto with a subscriber, or the
// platform with its metrics.
type target struct {
	name    string
	proc    *loadgen.Process
	metrics string // the platform's /metrics URL; "" for Mosquitto
	pprof   string // the platform's pprof address
}

// startMosquittoTarget starts the reference broker.
func (o *loadgenOptions) startMosquittoTarget(dir string) (*target, error) {
	d := filepath.Join(dir, "mosquitto")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	p, err := loadgen.StartMosquitto(o.mosquitto, d)
	if err != nil {
		return nil, err
	}
	return &target{name: "mosquitto", proc: p}, nil
}

// startPlatform registers the devices in a fresh data folder (giving each
// a secret) and starts `waystation serve` on it.
func (o *loadgenOptions) startPlatform(ctx context.Context, bin, dir, name string,
	devs []loadgen.Device, profile bool) (*target, error) {
	data := filepath.Join(dir, name)
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	if err := provisionLoad(filepath.Join(data, "waystation.db"), devs); err != nil {
		return nil, err
	}
	mqttAddr, err := loadgen.FreeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := loadgen.FreeAddr()
	if err != nil {
		return nil, err
	}
	// The devices of a load run report far faster than real ones: the
	// rate limit is raised (and still checked on every publish).
	args := []string{"serve", "--data", data, "--mqtt", mqttAddr, "--ws", "", "--http", httpAddr,
		"--log-level", "warn", "--max-msgs-per-second", "100000", "--msg-burst", "100000"}
	t := &target{name: "waystation", metrics: "http://" + httpAddr + "/metrics"}
	if profile {
		if t.pprof, err = loadgen.FreeAddr(); err != nil {
			return nil, err
		}
		args = append(args, "--pprof", t.pprof)
	}
	var env []string
	if o.memoryLimit != "" {
		env = append(env, "GOMEMLIMIT="+o.memoryLimit)
	}
	if t.proc, err = loadgen.Start("waystation", bin, args, env, filepath.Join(data, "serve.log"),
		mqttAddr); err != nil {
		return nil, err
	}
	// Logins are held until the controller has subscribed; /healthz says so.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return t, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = t.proc.Stop()
			return nil, fmt.Errorf("waystation not ready after 30 s (see %s)",
				filepath.Join(data, "serve.log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// provisionLoad registers the stations and devices of a load in a data
// file, in one transaction, and sets each device's secret.
func provisionLoad(path string, devs []loadgen.Device) error {
	db, err := devices.OpenDB(path, time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	reg, err := devices.NewRegistry(db, devices.RegistryOptions{})
	if err != nil {
		return err
	}
	var stations []devices.Station
	var list []devices.Device
	seen := map[string]bool{}
	for _, d := range devs {
		if !seen[d.Station] {
			seen[d.Station] = true
			stations = append(stations, devices.Station{ID: d.Station, Name: "Load " + d.Station,
				Lat: 32.6, Lon: 116.3, Hours: "24h"})
		}
		list = append(list, devices.Device{ID: d.ID, Station: d.Station, Kind: schemas.KindAC})
	}
	if err := reg.AddStations(stations); err != nil {
		return err
	}
	secrets, err := reg.Provision(list)
	if err != nil {
		return err
	}
	for i := range devs {
		devs[i].Secret = secrets[devs[i].ID]
	}
	return nil
}

// sink counts what reached the far end of a target: the subscriber's
// reads, or the platform's telemetry handled.
type sink struct {
	t   *target
	sub *loadgen.Subscriber
}

func (t *target) sink(qos byte) (*sink, error) {
	s := &sink{t: t}
	if t.metrics == "" {
		sub, err := loadgen.Subscribe(t.proc.Addr, "loadgen-sink", "", "",
			"waystation/v1/+/+/telemetry", qos, nil)
		if err != nil {
			return nil, err
		}
		s.sub = sub
	}
	return s, nil
}

// handled is how many messages the far end has taken so far, and how many
// the platform dropped or refused.
func (s *sink) handled(ctx context.Context) (ok, lost int64, err error) {
	if s.sub != nil {
		return s.sub.Count(), 0, nil
	}
	m, err := loadgen.ReadMetrics(ctx, s.t.metrics)
	if err != nil {
		return 0, 0, err
	}
	ok = int64(m.Value("waystation_messages_total", "channel", "telemetry", "result", "ok"))
	lost = int64(m.Value("waystation_messages_total", "channel", "telemetry", "result", "dropped") +
		m.Value("waystation_messages_total", "channel", "telemetry", "result", "invalid") +
		m.Value("waystation_messages_total", "channel", "telemetry", "result", "unknown_device"))
	return ok, lost, nil
}

func (s *sink) close() {
	if s.sub != nil {
		_ = s.sub.Close()
	}
}

// throughput is one ingest run.
type throughput struct {
	sent, handled, lost int64
	rate                float64 // handled a second, from the first publish to the last handled
	sendRate            float64
	cpu                 float64 // cores the target used
	genCPU              float64 // cores the load generator (this process) used
}

// drive publishes for d at rate (0: flat out) and waits until the far end
// has everything or stops moving.
func drive(ctx context.Context, g *loadgen.Generator, t *target, s *sink, qos byte, rate float64,
	d time.Duration) (throughput, error) {
	ok0, lost0, err := s.handled(ctx)
	if err != nil {
		return throughput{}, err
	}
	p0, _ := loadgen.ReadProc(t.proc.Pid())
	g0, _ := loadgen.ReadProc(os.Getpid())
	start := time.Now()
	st, err := g.Run(ctx, qos, rate, d)
	if err != nil {
		return throughput{}, err
	}
	tick := 100 * time.Millisecond
	if s.sub != nil {
		tick = 10 * time.Millisecond
	}
	var ok, lost int64
	last, lastChange := int64(-1), time.Now()
	for {
		if ok, lost, err = s.handled(ctx); err != nil {
			return throughput{}, err
		}
		if ok != last {
			last, lastChange = ok, time.Now()
		}
		if ok-ok0+lost-lost0 >= st.Sent || time.Since(lastChange) > 2*time.Second || ctx.Err() != nil {
			break
		}
		time.Sleep(tick)
	}
	end := lastChange
	if s.sub != nil && !s.sub.Last().IsZero() {
		end = s.sub.Last()
	}
	p1, _ := loadgen.ReadProc(t.proc.Pid())
	g1, _ := loadgen.ReadProc(os.Getpid())
	r := throughput{sent: st.Sent, handled: ok - ok0, lost: lost - lost0,
		sendRate: st.Rate(), cpu: loadgen.CPUShare(p0, p1), genCPU: loadgen.CPUShare(g0, g1)}
	if el := end.Sub(start); el > 0 {
		r.rate = float64(r.handled) / el.Seconds()
	}
	return r, nil
}

// runIngest runs the ingest and latency suites on Mosquitto, then on the
// platform, with the same devices.
func (o *loadgenOptions) runIngest(ctx context.Context, bin, dir string,
	say func(string, ...any)) ([]benchRow, error) {
	devs := loadgen.Devices(o.devices)
	res := map[string]map[string]throughput{} // target → run → figures
	lat := map[string][3]time.Duration{}      // target → p50, p99, p99.9
	latNote := map[string]string{}

	for _, name := range o.targets {
		var t *target
		var err error
		if name == "mosquitto" {
			t, err = o.startMosquittoTarget(dir)
		} else {
			t, err = o.startPlatform(ctx, bin, dir, "ingest", devs, o.profile)
		}
		if err != nil {
			return nil, err
		}
		res[name] = map[string]throughput{}
		err = func() error {
			defer t.proc.Stop()
			g, err := loadgen.New(loadgen.Options{Addr: t.proc.Addr, Devices: devs})
			if err != nil {
				return err
			}
			defer g.Close()
			cs := g.Connect(ctx)
			if cs.Failed > 0 {
				return fmt.Errorf("%s: %d of %d devices failed to connect: %v", name, cs.Failed,
					len(devs), cs.FirstErr)
			}
			say("%s: %d devices connected in %v", name, cs.Connected, cs.Took.Round(time.Millisecond))

			if o.has("ingest") {
				for _, q := range o.qos {
					s, err := t.sink(byte(q))
					if err != nil {
						return err
					}
					// A short warm-up, then the run measured.
					if _, err := drive(ctx, g, t, s, byte(q), 0, time.Second); err != nil {
						s.close()
						return err
					}
					stopProfile := startProfile(t, dir, q, o.duration, say)
					r, err := drive(ctx, g, t, s, byte(q), 0, o.duration)
					stopProfile()
					s.close()
					if err != nil {
						return err
					}
					res[name][fmt.Sprint("qos", q)] = r
					say("%s qos %d: sent %d (%.0f/s), handled %d (%.0f/s), lost %d, "+
						"server %.2f cores, generator %.2f", name, q, r.sent, r.sendRate, r.handled,
						r.rate, r.lost, r.cpu, r.genCPU)
				}
			}
			if o.has("latency") {
				s, err := t.sink(0)
				if err != nil {
					return err
				}
				defer s.close()
				// A warm-up at the rate: the first second after the
				// devices connect (heaps and maps growing, the first
				// collections) is not the steady state measured.
				if _, err := drive(ctx, g, t, s, 0, o.latencyRate, time.Second); err != nil {
					return err
				}
				var before, beforeIngest loadgen.Histogram
				if t.metrics != "" {
					m, err := loadgen.ReadMetrics(ctx, t.metrics)
					if err != nil {
						return err
					}
					before = m.Histogram("waystation_telemetry_delay_seconds")
					beforeIngest = m.Histogram("waystation_ingest_seconds")
				} else {
					s.sub.Latencies().Reset()
				}
				stopProfile := startLatencyProfiles(ctx, t, dir, o.duration, say)
				r, err := drive(ctx, g, t, s, 0, o.latencyRate, o.duration)
				stopProfile()
				if err != nil {
					return err
				}
				res[name]["latency"] = r
				if t.metrics != "" {
					m, err := loadgen.ReadMetrics(ctx, t.metrics)
					if err != nil {
						return err
					}
					h := m.Histogram("waystation_telemetry_delay_seconds").Sub(before)
					var p [3]time.Duration
					var hi99 time.Duration
					p[0], _, _ = h.Quantile(0.5)
					p[1], _, hi99 = h.Quantile(0.99)
					p[2], _, _ = h.Quantile(0.999)
					lat[name] = p
					latNote[name] = fmt.Sprintf("from the histogram; p99 bucket up to %v", hi99)
					// The part of it from the broker handing the message
					// to ingest to the twin updated.
					hi := m.Histogram("waystation_ingest_seconds").Sub(beforeIngest)
					say("%s: of which in ingest (queued, decoded, twin updated): p50 %s p99 %s",
						name, quantileText(hi, 0.5), quantileText(hi, 0.99))
				} else {
					q, n := s.sub.Latencies().Percentiles(0.5, 0.99, 0.999)
					lat[name] = [3]time.Duration{q[0], q[1], q[2]}
					latNote[name] = fmt.Sprintf("%d samples", n)
				}
				say("%s at %.0f/s: sent %.0f/s, p50 %v p99 %v p99.9 %v (%s); cores used: "+
					"server %.2f, generator %.2f", name, o.latencyRate, r.sendRate, lat[name][0],
					lat[name][1], lat[name][2], latNote[name], r.cpu, r.genCPU)
			}
			return nil
		}()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}

	var rows []benchRow
	for _, q := range o.qos {
		k := fmt.Sprint("qos", q)
		w, m := res["waystation"][k], res["mosquitto"][k]
		if !o.has("ingest") {
			break
		}
		row := benchRow{Suite: "ingest", Measure: fmt.Sprintf("QoS %d, %d devices flat out", q, o.devices),
			Unit: "msg/s", Waystation: w.rate, Mosquitto: m.rate, Ratio: ratio(w.rate, m.rate),
			Note: fmt.Sprintf("lost %d of %d; cores used: waystation %.2f, mosquitto %.2f, "+
				"generator %.2f / %.2f", w.lost, w.sent, w.cpu, m.cpu, w.genCPU, m.genCPU)}
		if q == 0 {
			row.Target = ">= 50000 and >= 0.8 x mosquitto"
			row.Met = met(w.rate >= 50000 && row.Ratio >= 0.8)
		} else {
			row.Target = ">= 0.8 x mosquitto"
			row.Met = met(row.Ratio >= 0.8)
		}
		rows = append(rows, row)
	}
	if o.has("latency") {
		names := []string{"p50", "p99", "p99.9"}
		for i, n := range names {
			w, m := lat["waystation"][i], lat["mosquitto"][i]
			row := benchRow{Suite: "latency", Unit: "ms",
				Measure:    fmt.Sprintf("%s publish to twin updated at %.0f msg/s", n, o.latencyRate),
				Waystation: ms(w), Mosquitto: ms(m), Ratio: ratio(ms(w), ms(m)),
				Note: "waystation " + latNote["waystation"] + "; mosquitto to its subscriber, " +
					latNote["mosquitto"]}
			if n == "p99" {
				row.Target = "< 20 ms"
				row.Met = met(w < 20*time.Millisecond)
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// startProfile takes a CPU profile of the platform over d when it serves
// profiles; the returned function waits for it to be written.
func startProfile(t *target, dir string, qos int, d time.Duration,
	say func(string, ...any)) func() {
	if t.pprof == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := max(int(d/time.Second)-1, 1)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", t.pprof, secs)
		resp, err := http.Get(url)
		if err != nil {
			say("profile: %v", err)
			return
		}
		defer resp.Body.Close()
		file := filepath.Join(dir, fmt.Sprintf("server-cpu-qos%d.pprof", qos))
		f, err := os.Create(file)
		if err != nil {
			say("profile: %v", err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			say("profile: %v", err)
			return
		}
		say("profile written: %s", file)
	}()
	return func() { <-done }
}

// startLatencyProfiles takes an execution trace and a CPU profile of the
// platform during the middle of a latency run of length d, when it serves
// profiles; the returned function waits for them to be written.
func startLatencyProfiles(ctx context.Context, t *target, dir string, d time.Duration,
	say func(string, ...any)) func() {
	if t.pprof == "" {
		return func() {}
	}
	secs := max(int(d/time.Second)/2, 1)
	var done []chan struct{}
	for _, p := range []struct{ name, file string }{
		{fmt.Sprintf("trace?seconds=%d", secs), "server-trace-latency.out"},
		{fmt.Sprintf("profile?seconds=%d", secs), "server-cpu-latency.pprof"},
	} {
		c := make(chan struct{})
		done = append(done, c)
		go func() {
			defer close(c)
			select {
			case <-time.After(d / 4):
			case <-ctx.Done():
				return
			}
			saveProfile(ctx, t.pprof, p.name, filepath.Join(dir, p.file), say)
		}()
	}
	return func() {
		for _, c := range done {
			<-c
		}
	}
}

// saveProfile fetches /debug/pprof/NAME from the platform into file.
func saveProfile(ctx context.Context, addr, name, file string, say func(string, ...any)) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("http://%s/debug/pprof/%s", addr, name), nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		say("profile %s: %v", name, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		say("profile %s: %v", name, err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err == nil {
		say("profile written: %s", file)
	}
}

// fleetFigures are one target's fleet run.
type fleetFigures struct {
	connect     time.Duration
	cpu         float64 // share of one core while the fleet reports
	rssPerDev   float64 // bytes of resident memory the fleet added, a device
	rssTotal    int64
	sent, recvd int64
}

// runFleet connects many devices reporting every interval to each target
// in turn and reads the target's CPU and memory from /proc.
func (o *loadgenOptions) runFleet(ctx context.Context, bin, dir string,
	say func(string, ...any)) ([]benchRow, error) {
	devs := loadgen.Devices(o.fleetDevices)
	res := map[string]fleetFigures{}
	for _, name := range o.targets {
		var t *target
		var err error
		if name == "mosquitto" {
			t, err = o.startMosquittoTarget(dir)
		} else {
			t, err = o.startPlatform(ctx, bin, dir, "fleet", devs, o.profile)
		}
		if err != nil {
			return nil, err
		}
		f, err := o.fleetOn(ctx, t, devs, say)
		_ = t.proc.Stop()
		if err != nil {
			return nil, fmt.Errorf("%s fleet: %w", name, err)
		}
		res[name] = f
	}
	w, m := res["waystation"], res["mosquitto"]
	n := o.fleetDevices
	every := o.fleetInterval
	return []benchRow{
		{Suite: "fleet", Measure: fmt.Sprintf("connect %d devices", n), Unit: "s",
			Waystation: w.connect.Seconds(), Mosquitto: m.connect.Seconds(),
			Ratio: ratio(w.connect.Seconds(), m.connect.Seconds()), Target: "< 30 s",
			Met: met(w.connect < 30*time.Second), Note: "200 connecting at a time"},
		{Suite: "fleet", Measure: fmt.Sprintf("CPU, %d devices reporting every %v", n, every),
			Unit: "% of a core", Waystation: 100 * w.cpu, Mosquitto: 100 * m.cpu,
			Ratio: ratio(w.cpu, m.cpu), Target: "< 15 %", Met: met(w.cpu < 0.15),
			Note: fmt.Sprintf("handled %d of %d sent", w.recvd, w.sent)},
		{Suite: "fleet", Measure: "resident memory a device", Unit: "KiB",
			Waystation: w.rssPerDev / 1024, Mosquitto: m.rssPerDev / 1024,
			Ratio: ratio(w.rssPerDev, m.rssPerDev), Target: "< 40 KiB", Met: met(w.rssPerDev < 40<<10),
			Note: fmt.Sprintf("RSS grown by the fleet; whole process %d MiB (mosquitto %d MiB)",
				w.rssTotal>>20, m.rssTotal>>20)},
	}, nil
}

func (o *loadgenOptions) fleetOn(ctx context.Context, t *target, devs []loadgen.Device,
	say func(string, ...any)) (fleetFigures, error) {
	var f fleetFigures
	base, err := loadgen.ReadProc(t.proc.Pid())
	if err != nil {
		return f, err
	}
	s, err := t.sink(1)
	if err != nil {
		return f, err
	}
	defer s.close()
	g, err := loadgen.New(loadgen.Options{Addr: t.proc.Addr, Devices: devs})
	if err != nil {
		return f, err
	}
	defer g.Close()
	cs := g.Connect(ctx)
	if cs.Failed > 0 {
		return f, fmt.Errorf("%d of %d devices failed to connect: %v", cs.Failed, len(devs), cs.FirstErr)
	}
	f.connect = cs.Took
	say("%s: %d devices connected in %v", t.name, cs.Connected, cs.Took.Round(time.Millisecond))

	ok0, _, err := s.handled(ctx)
	if err != nil {
		return f, err
	}
	// CPU is read once every device has reported once, to the end.
	var p0 loadgen.Proc
	got := make(chan struct{})
	go func() {
		defer close(got)
		select {
		case <-time.After(o.fleetInterval):
		case <-ctx.Done():
		}
		p0, _ = loadgen.ReadProc(t.proc.Pid())
		if t.pprof != "" {
			secs := max(int((o.fleetHold-o.fleetInterval)/time.Second)-2, 1)
			saveProfile(ctx, t.pprof, fmt.Sprintf("profile?seconds=%d", secs),
				filepath.Join(o.dir, "server-cpu-fleet.pprof"), say)
		}
	}()
	st, err := g.Run(ctx, 1, float64(len(devs))/o.fleetInterval.Seconds(), o.fleetHold)
	<-got
	if err != nil {
		return f, err
	}
	p1, err := loadgen.ReadProc(t.proc.Pid())
	if err != nil {
		return f, err
	}
	time.Sleep(time.Second) // the last reports reach the far end
	ok1, _, err := s.handled(ctx)
	if err != nil {
		return f, err
	}
	if c := g.Connected(); c < len(devs) {
		return f, fmt.Errorf("only %d of %d devices still connected", c, len(devs))
	}
	f.cpu = loadgen.CPUShare(p0, p1)
	f.rssTotal = p1.RSS
	f.rssPerDev = float64(p1.RSS-base.RSS) / float64(len(devs))
	f.sent, f.recvd = st.Sent, ok1-ok0
	say("%s: CPU %.1f%% of a core, RSS %d MiB (+%.1f KiB a device), sent %d handled %d",
		t.name, 100*f.cpu, p1.RSS>>20, f.rssPerDev/1024, f.sent, f.recvd)
	if t.metrics != "" {
		// Where the platform's memory is, as its runtime sees it.
		if m, err := loadgen.ReadMetrics(ctx, t.metrics); err == nil {
			kib := func(name string) float64 { return m.Value(name) / 1024 / float64(len(devs)) }
			say("%s: a device: heap in use %.1f KiB (live %.1f), stacks %.1f KiB, "+
				"%.1f goroutines; runtime holds %.1f KiB (heap idle %.1f, of it released %.1f)",
				t.name, kib("go_memstats_heap_inuse_bytes"), kib("go_memstats_heap_alloc_bytes"),
				kib("go_memstats_stack_inuse_bytes"), m.Value("go_goroutines")/float64(len(devs)),
				kib("go_memstats_sys_bytes"), kib("go_memstats_heap_idle_bytes"),
				kib("go_memstats_heap_released_bytes"))
		}
	}
	if t.pprof != "" {
		saveProfile(ctx, t.pprof, "heap", filepath.Join(o.dir, "server-heap-fleet.pprof"), say)
	}
	return f, nil
}

// quantileText is quantile q of h, or "over" its last finite bound.
func quantileText(h loadgen.Histogram, q float64) string {
	est, lo, hi := h.Quantile(q)
	if hi == time.Duration(math.MaxInt64) {
		return "over " + lo.String()
	}
	return est.String()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func met(ok bool) *bool { return &ok }

// printBench prints the report as a table.
func printBench(w io.Writer, rows []benchRow) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %-48s %12s %12s %7s  %-32s %s\n", "SUITE", "MEASURE", "WAYSTATION",
		"MOSQUITTO", "RATIO", "TARGET", "MET")
	for _, r := range rows {
		metS := ""
		if r.Met != nil {
			metS = "no"
			if *r.Met {
				metS = "yes"
			}
		}
		fmt.Fprintf(&b, "%-8s %-48s %12s %12s %7.2f  %-32s %s\n", r.Suite, r.Measure+" ("+r.Unit+")",
			num(r.Waystation), num(r.Mosquitto), r.Ratio, r.Target, metS)
		if r.Note != "" {
			fmt.Fprintf(&b, "%-8s   %s\n", "", r.Note)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func num(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
