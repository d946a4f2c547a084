package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/errgroup"

	"github.com/waystation/waystation/broker"
	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/simulators"
)

// serveOptions are the flags of `waystation serve`.
type serveOptions struct {
	data           string
	mqttAddr       string
	wsAddr         string
	httpAddr       string
	demo           bool
	demoStations   int
	demoSeed       int64
	maxPacketBytes uint32
	logLevel       string
	timeZone       string
	speed          float64 // simulated seconds per wall second, for the controller and the demo
	start          string  // simulated start time; "" for now
	demoScenario   string  // scenario the demo county plays
	access         accessFlags
	commands       commandFlags
	limits         limitFlags
	bench          benchFlags
	notify         notifyFlags
	ext            externalFlags // an external broker instead of the embedded one
	alerts         alertFlags
	history        historyFlags
}

func newServeCmd() *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the embedded broker, controller, HTTP API and metrics",
		Long: "serve runs everything on one data folder: the embedded MQTT broker that devices\n" +
			"log in to, the controller that keeps their twins, and the HTTP API with /metrics.\n" +
			"With --demo it also registers and runs a simulated county of stations.\n\n" +
			"Past one machine, --broker attaches the controller to an external MQTT broker\n" +
			"instead (device logins: waystation broker export-auth), and --partition I/N\n" +
			"lets N controllers share the stations.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkServeFlags(cmd.Flags(), o); err != nil {
				return err
			}
			log, err := newLogger(cmd.ErrOrStderr(), o.logLevel)
			if err != nil {
				return err
			}
			s, err := openServer(o, log)
			if err != nil {
				return err
			}
			return s.run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.data, "data", "./data", "data folder (bbolt files, admin token)")
	f.StringVar(&o.mqttAddr, "mqtt", ":1883", "MQTT TCP listen address")
	f.StringVar(&o.wsAddr, "ws", ":8083", `MQTT over WebSocket listen address ("" for none)`)
	f.StringVar(&o.httpAddr, "http", ":8080", "HTTP listen address (API, /metrics, /healthz)")
	f.BoolVar(&o.demo, "demo", false, "also run a simulated county of stations")
	f.IntVar(&o.demoStations, "demo-stations", 129, "stations in the simulated county")
	f.Int64Var(&o.demoSeed, "demo-seed", 1, "seed of the simulated county")
	f.Uint32Var(&o.maxPacketBytes, "max-packet-bytes", 64<<10, "largest MQTT packet accepted")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.timeZone, "tz", "Asia/Shanghai", "time zone of schedules and reports (IANA name)")
	f.Float64Var(&o.speed, "speed", 1, "run the controller and the demo this many times faster "+
		"than the wall clock (60: an hour a minute)")
	f.StringVar(&o.start, "start", "", `simulated start time, e.g. "2025-07-20 05:00" in --tz `+
		"(default now)")
	f.StringVar(&o.demoScenario, "demo-scenario", "", "scenario the demo county plays: "+
		strings.Join(simulators.Scenarios(), ", ")+", or a YAML file (its start unless --start)")
	addAccessFlags(f, &o.access)
	addCommandFlags(f, &o.commands)
	addLimitFlags(f, &o.limits)
	addBenchFlags(f, &o.bench)
	addNotifyFlags(f, &o.notify)
	addExternalFlags(f, &o.ext)
	addAlertFlags(f, &o.alerts)
	addHistoryFlags(f, &o.history)
	return cmd
}

// zeroAllowed names the number flags whose 0 means something of its own.
var zeroAllowed = map[string]bool{
	"max-msgs-per-second": true, // no limit
	"demo-seed":           true, // a seed like any other
}

// checkServeFlags refuses what only the command line can get wrong: a
// number flag given as 0 (options built in code leave it 0 for its
// default), and the demo's flags without --demo.
func checkServeFlags(f *pflag.FlagSet, o serveOptions) error {
	if f.Changed("speed") && o.speed == 0 {
		return fmt.Errorf("--speed 0: want %g to %g", simulators.MinSpeed, simulators.MaxSpeed)
	}
	// Options built in code leave a number at 0 for its default; on the
	// command line a 0 is more likely meant as "none" or "at once", which
	// the default is not, so it is refused rather than quietly replaced.
	var zero error
	f.VisitAll(func(fl *pflag.Flag) {
		if zero != nil || !fl.Changed || zeroAllowed[fl.Name] {
			return
		}
		// Any number or duration whose value is 0 ("0", "-0", "0s").
		v := strings.TrimSuffix(fl.Value.String(), "s")
		if n, err := strconv.ParseFloat(v, 64); err == nil && n == 0 && !strings.HasPrefix(fl.Value.Type(), "string") {
			zero = fmt.Errorf("--%s 0: give a value above 0, or leave the flag out for its default (%s)",
				fl.Name, fl.DefValue)
		}
	})
	if zero != nil {
		return zero
	}
	if !o.demo {
		for _, name := range []string{"demo-stations", "demo-seed"} {
			if f.Changed(name) {
				return fmt.Errorf("--%s needs --demo", name)
			}
		}
	}
	return nil
}

// newLogger builds the process logger.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// server is every part of `serve`, wired together.
type server struct {
	o    serveOptions
	log  *slog.Logger
	loc  *time.Location
	reg  *prometheus.Registry
	db   *bolt.DB
	devs *devices.Registry
	twin *devices.Twins
	ops  *controller.Operators
	mqtt *broker.Broker      // the embedded broker; nil with --broker
	ext  *controller.MQTTBus // the external broker's connection; nil without --broker
	in   *controller.Ingest
	pres *controller.Presence
	api  *controller.API

	httpLn net.Listener
	ready  chan struct{} // closed when everything listens and ingest is subscribed

	clock *simulators.Clock // the time of the controller and the demo devices
	start time.Time         // the simulated start asked for; the clock may resume later

	demoStopping atomic.Bool // the demo's devices are being stopped (see quietWhen)
	acc          accessParts // door access, allow-lists, usage

	// notify takes every notice people are told about (alerts, commands,
	// plans) to the event stream and the webhooks. It is set by
	// openNotify: open the parts that notify after it and hand them
	// s.notify.
	notify controller.Notifiers
	nt     notifyParts // the event stream and webhooks
	cmds   *controller.Commands
	con    consoleParts // the web console
	plan   planParts    // crews and pre-cooling
	al     alertParts   // alert rules, silences

	hist *devices.History // telemetry history

	restoreGC func() // ends the start's relaxed garbage collection (see relaxGC)
}

// openServer checks the options and opens every part. It fails fast with a
// message that says what to fix; nothing is left open when it fails.
func openServer(o serveOptions, log *slog.Logger) (_ *server, err error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(o.timeZone)
	if err != nil {
		return nil, fmt.Errorf("--tz %q: %w", o.timeZone, err)
	}
	var start time.Time
	if o.demoScenario != "" {
		sc, err := simulators.LoadScenario(o.demoScenario)
		if err != nil {
			return nil, fmt.Errorf("--demo-scenario: %w", err)
		}
		start = sc.Start
	}
	if o.start != "" {
		if start, err = simulators.ParseTime(o.start, loc); err != nil {
			return nil, fmt.Errorf("--start: %w", err)
		}
	}
	s := &server{o: o, log: log, loc: loc, reg: prometheus.NewRegistry(), ready: make(chan struct{}),
		clock: simulators.NewClock(start, o.speed), restoreGC: relaxGC()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(
		collectors.ProcessCollectorOpts{}))

	_, statErr := os.Stat(o.data)
	s.db, err = devices.OpenDB(filepath.Join(o.data, "waystation.db"), time.Second)
	if err != nil {
		return nil, err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		// A mistyped --data would otherwise start an empty platform with a
		// new admin token and nothing else to say so.
		abs, _ := filepath.Abs(o.data)
		if o.demo {
			log.Info("created the data folder", "data", abs)
		} else {
			log.Warn("the data folder did not exist and was created: the platform starts empty",
				"data", abs)
		}
	}
	if err := s.loadDevices(); err != nil {
		return nil, err
	}
	// A simulated start earlier than the data folder's last report would
	// run its times backwards (reports from the future, alerts resolved
	// before they began): the clock resumes from that report instead.
	last := s.twin.LastSeen()
	resume := !start.IsZero() && start.Before(last)
	if resume {
		s.clock = simulators.NewClock(last, o.speed)
	}
	s.start = start
	if !start.IsZero() || s.clock.Speed() != 1 {
		log = slog.New(newSimTime(log.Handler(), s.clock.Now, loc))
		s.log = log
	}
	if resume {
		log.Info("resuming the simulated clock from the data folder's last report",
			"start", start.In(loc).Format(time.DateTime), "resume", last.In(loc).Format(time.DateTime),
			"data", o.data)
	}
	if s.ops, err = controller.NewOperators(s.db, s.clock.Now); err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(o.data, "admin.token")
	if _, created, err := s.ops.EnsureAdminToken(tokenFile); err != nil {
		return nil, err
	} else if created {
		log.Info("created the admin operator token; send it as a bearer token", "file", tokenFile)
	}

	ctrlSecret, err := ensureControllerSecret(filepath.Join(o.data, controllerSecretFile))
	if err != nil {
		return nil, err
	}
	if o.ext.broker != "" {
		if err := s.openExternal(); err != nil {
			return nil, err
		}
	} else {
		bo := broker.Options{
			TCPAddr:        o.mqttAddr,
			WSAddr:         o.wsAddr,
			StorePath:      filepath.Join(o.data, "broker.db"),
			MaxPacketBytes: o.maxPacketBytes,
			Credentials:    registryCredentials{s.devs},
			Logger:         log.With("component", "broker"),
			Registerer:     s.reg,
			HoldLogins:     true, // until ingest has subscribed

			// The controller's own network login, for tools such as waystation probe.
			ControllerUser: controllerUser, ControllerSecret: ctrlSecret,
		}
		o.limits.apply(&bo, o.speed)
		if s.mqtt, err = broker.New(bo); err != nil {
			return nil, err
		}
	}
	s.in, err = controller.NewIngest(controller.IngestOptions{
		Bus:        s.bus(),
		Partition:  s.o.ext.part,
		Registry:   s.devs,
		Twins:      s.twin,
		Now:        s.clock.Now,
		Logger:     log,
		Registerer: s.reg,
	})
	if err != nil {
		return nil, err
	}
	// Presence checks every 10 s of the controller's clock.
	s.pres, err = controller.NewPresence(controller.PresenceOptions{
		Twins: s.twin, Registry: s.devs, Now: s.clock.Now, Logger: log, Registerer: s.reg,
		Every: max(time.Duration(float64(10*time.Second)/o.speed), 50*time.Millisecond),
	})
	if err != nil {
		return nil, err
	}
	if err := s.openNotify(); err != nil {
		return nil, err
	}
	if err := s.openAccess(); err != nil {
		return nil, err
	}
	if err := s.openCommands(); err != nil {
		return nil, err
	}
	if err := s.openBench(); err != nil {
		return nil, err
	}
	if err := s.openPlan(); err != nil {
		return nil, err
	}
	if err := s.openAlerts(); err != nil {
		return nil, err
	}
	if err := s.openHistory(); err != nil {
		return nil, err
	}
	apiOpts := controller.APIOptions{
		Registry: s.devs, Twins: s.twin, Operators: s.ops, Gatherer: s.reg, Logger: log,
		Ready: s.isReady, Registerer: s.reg,
	}
	s.acc.apiOptions(&apiOpts)
	s.nt.apiOptions(&apiOpts)
	apiOpts.Commands = s.cmds
	s.al.apiOptions(&apiOpts)
	if err := s.openConsole(&apiOpts); err != nil {
		return nil, err
	}
	s.plan.apiOptions(&apiOpts)
	s.historyAPIOptions(&apiOpts)
	s.api, err = controller.NewAPI(apiOpts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (o *serveOptions) check() error {
	if strings.TrimSpace(o.data) == "" {
		return errors.New("--data is empty: give the folder for the platform's files")
	}
	for _, a := range []struct{ flag, addr string }{
		{"--mqtt", o.mqttAddr}, {"--http", o.httpAddr}, {"--ws", o.wsAddr},
	} {
		if a.addr == "" && a.flag == "--ws" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s %q: want host:port or :port (%v)", a.flag, a.addr, err)
		}
	}
	if o.maxPacketBytes < 1024 {
		return fmt.Errorf("--max-packet-bytes %d: at least 1024", o.maxPacketBytes)
	}
	if o.speed == 0 {
		o.speed = 1 // options built in code rather than from flags
	}
	if o.speed < simulators.MinSpeed || o.speed > simulators.MaxSpeed {
		return fmt.Errorf("--speed %g: want %g to %g", o.speed, simulators.MinSpeed, simulators.MaxSpeed)
	}
	if err := o.limits.check(); err != nil {
		return err
	}
	if err := o.access.check(); err != nil {
		return err
	}
	if err := o.commands.check(); err != nil {
		return err
	}
	if err := o.notify.check(); err != nil {
		return err
	}
	if err := o.ext.check(o.demo); err != nil {
		return err
	}
	if err := o.alerts.check(); err != nil {
		return err
	}
	if err := o.history.check(); err != nil {
		return err
	}
	if o.demoScenario != "" && !o.demo {
		return errors.New("--demo-scenario needs --demo")
	}
	if o.demo && (o.demoStations < 1 || o.demoStations > 999) {
		return fmt.Errorf("--demo-stations %d: want 1..999", o.demoStations)
	}
	return nil
}

// consoleURL is where a browser on this machine finds the console served
// on addr.
func consoleURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// run starts every part and blocks until ctx ends, then stops them in order.
func (s *server) run(ctx context.Context) error {
	defer s.close()

	if err := s.startBroker(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.o.httpAddr)
	if err != nil {
		return fmt.Errorf("--http %q: %w", s.o.httpAddr, err)
	}
	s.httpLn = ln
	s.log.Info("http listening", "addr", ln.Addr().String(), "console", consoleURL(ln.Addr()),
		"admin_token_file", filepath.Join(s.o.data, "admin.token"))
	// No write timeout: a live event stream is a response that lasts.
	hs := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}

	// Devices stop first, then the broker, then the controller; the demo's
	// devices after the broker (see below).
	ctrlCtx, stopCtrl := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCtrl()
	ctrl, ctrlCtx := errgroup.WithContext(ctrlCtx)
	ctrl.Go(func() error { return s.twin.Run(ctrlCtx) })
	ctrl.Go(func() error { return s.in.Run(ctrlCtx) })
	ctrl.Go(func() error { return s.pres.Run(ctrlCtx) })
	s.runAccess(ctrlCtx, ctrl)
	s.runNotify(ctrlCtx, ctrl)
	s.runCommands(ctrlCtx, ctrl)
	s.runBench(ctrlCtx, ctrl)
	s.runPlan(ctrlCtx, ctrl)
	s.runAlerts(ctrlCtx, ctrl)
	s.runHistory(ctrlCtx, ctrl)
	ctrl.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	ctrl.Go(func() error {
		<-ctrlCtx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(shut)
	})

	select {
	case <-s.in.Ready():
	case <-ctrlCtx.Done():
	}
	s.openLogins()

	devCtx, stopDevs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDevs()
	devs, devCtx := errgroup.WithContext(devCtx)
	if s.o.demo {
		devs.Go(func() error { return s.runDemo(devCtx) })
	}
	close(s.ready)
	s.restoreGC()

	// Stop on the caller's signal or when any part fails.
	select {
	case <-ctx.Done():
	case <-devCtx.Done():
	case <-ctrlCtx.Done():
	}
	// The demo's devices live and stop with this process: stopping it is
	// the operator's doing, not a county going dark. The broker closes
	// first and cuts them without publishing their wills, so their twins
	// stay online and the next start's grace covers the gap, as after a
	// restart of the controller alone.
	if s.o.demo {
		s.demoStopping.Store(true)
		s.closeBroker()
	}
	stopDevs()
	derr := devs.Wait()

	// The broker stops taking messages before the controller stops, so what
	// the broker acknowledged is still handled: ingest drains its queues.
	s.closeBroker()
	stopCtrl()
	cerr := ctrl.Wait()
	s.log.Info("stopped")
	return errors.Join(derr, cerr)
}

// isReady reports whether the server serves devices and the API.
func (s *server) isReady() error {
	select {
	case <-s.ready:
		return nil
	default:
		return errors.New("starting")
	}
}

// close releases everything open, in reverse order.
func (s *server) close() {
	s.restoreGC()
	s.closeBroker()
	if s.twin != nil {
		if err := s.twin.Flush(); err != nil {
			s.log.Error("write twins", "err", err)
		}
	}
	s.flushHistory()
	s.flushAlerts()
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			s.log.Error("close data file", "err", err)
		}
	}
	s.mqtt, s.ext, s.twin, s.db = nil, nil, nil, nil
}

// registryCredentials lets the broker check device secrets in the registry.
type registryCredentials struct{ r *devices.Registry }

func (c registryCredentials) Authenticate(user string, pass []byte) (broker.Identity, error) {
	d, err := c.r.Authenticate(user, pass)
	switch {
	case errors.Is(err, devices.ErrNotFound):
		return broker.Identity{}, broker.ErrUnknownDevice
	case errors.Is(err, devices.ErrBadSecret):
		return broker.Identity{}, broker.ErrBadSecret
	case err != nil:
		return broker.Identity{}, err
	}
	return broker.Identity{Station: d.Station, Device: d.ID}, nil
}

// httpURL is the base URL of the HTTP listener, for logs and tests.
func (s *server) httpURL() string {
	addr := s.httpLn.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(addr.Port))
}
