package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/simulators/probe"
)

// The controller's network login. A device id matches
// [a-z0-9][a-z0-9-]{0,31}; the dot keeps this name outside that pattern,
// so no device can be registered under it.
const (
	controllerUser       = "waystation.controller"
	controllerSecretFile = "controller.secret"
	envControllerSecret  = "WAYSTATION_CONTROLLER_SECRET"
)

// ensureControllerSecret reads the controller's secret from path, or
// makes one and writes it there, readable by its owner only.
func ensureControllerSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
		return "", fmt.Errorf("%s is empty: delete it and start again for a new secret", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read the controller secret: %w", err)
	}

	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("make the controller secret: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("write the controller secret: %w", err)
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write the controller secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write the controller secret: %w", err)
	}
	return secret, nil
}

// probeOptions are the flags of `waystation probe`.
type probeOptions struct {
	device, station string
	broker          string
	user, secret    string
	data            string
	duration        time.Duration
	speed           float64
	answerWithin    time.Duration
	powerCycle      bool
	willWithin      time.Duration
	backWithin      time.Duration
	output          outputFormat
	logLevel        string
}

func newProbeCmd() *cobra.Command {
	o := probeOptions{output: outputTable}
	cmd := &cobra.Command{
		Use:   "probe --device D",
		Short: "Check that a device keeps the wire contract, watching it through the broker",
		Long: "probe watches one device through the platform's MQTT broker and checks every\n" +
			"message it sends against the contract, its retained status and (with\n" +
			"--power-cycle) its last will, that it reports at its interval, that it answers\n" +
			"device.ping correctly and in time, and that it drops a repeated or an expired\n" +
			"command. It prints a pass/fail report and exits non-zero on any failure.\n\n" +
			"It logs in as the platform's controller: on the server's machine it reads the\n" +
			"secret from --data/" + controllerSecretFile + "; elsewhere give --secret or $" +
			envControllerSecret + ".",
		Example: "  waystation probe --device ys-001-ac --duration 2m\n" +
			"  waystation probe --device ys-001-lock --power-cycle --broker tcp://10.0.0.5:1883",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.device, "device", "", "the device to probe")
	f.StringVar(&o.station, "station", "", "its station (default: learned from its topics)")
	f.StringVar(&o.broker, "broker", "tcp://127.0.0.1:1883", "the platform's MQTT broker")
	f.StringVar(&o.user, "user", controllerUser, "MQTT login allowed to watch and command devices")
	f.StringVar(&o.secret, "secret", "", "its password (or $"+envControllerSecret+
		"; else --data/"+controllerSecretFile+")")
	f.StringVar(&o.data, "data", "./data", "the server's data folder, for "+controllerSecretFile)
	f.DurationVar(&o.duration, "duration", probe.DefaultDuration, "how long to watch")
	f.Float64Var(&o.speed, "speed", 1, "the device's clock speed, for a simulated device")
	f.DurationVar(&o.answerWithin, "answer-within", probe.DefaultAnswerWithin,
		"how long a command's answer may take")
	f.BoolVar(&o.powerCycle, "power-cycle", false,
		"ask you to cut the device's power, to check its last will")
	f.DurationVar(&o.willWithin, "will-within", probe.DefaultWillWithin,
		"how long after the cut the last will may take")
	f.DurationVar(&o.backWithin, "back-within", probe.DefaultBackWithin,
		"how long after the cut the device may take to come back")
	f.VarP(&o.output, "output", "o", "output: table or json")
	f.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	_ = cmd.MarkFlagRequired("device") // fails only for a flag that does not exist
	return cmd
}

func (o *probeOptions) run(cmd *cobra.Command) error {
	log, err := newLogger(cmd.ErrOrStderr(), o.logLevel)
	if err != nil {
		return err
	}
	secret, err := o.resolveSecret(cmd)
	if err != nil {
		return err
	}
	out := &syncWriter{w: cmd.ErrOrStderr()}
	if o.output != outputJSON {
		out.w = cmd.OutOrStdout()
	}
	opts := probe.Options{
		Broker: o.broker, Username: o.user, Password: secret,
		Device: o.device, Station: o.station,
		Duration: o.duration, Speed: o.speed, AnswerWithin: o.answerWithin,
		WillWithin: o.willWithin, BackWithin: o.backWithin,
		Progress: func(s string) { out.println("... " + s) },
		Logger:   log.With("component", "probe"),
	}
	if o.powerCycle {
		opts.PowerCycle = func(context.Context) error {
			out.println(fmt.Sprintf(">>> cut the power of %s now (unplug it, or pull its network "+
				"cable), then restore it", o.device))
			return nil
		}
	}
	rep, err := probe.Run(cmd.Context(), opts)
	if err != nil {
		return err
	}
	if o.output == outputJSON {
		raw, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		if err := writeJSON(cmd.OutOrStdout(), raw); err != nil {
			return err
		}
	} else if err := rep.WriteText(cmd.OutOrStdout()); err != nil {
		return err
	}
	if rep.Failed() {
		n := 0
		for _, c := range rep.Checks {
			if c.Result == probe.Fail {
				n++
			}
		}
		return fmt.Errorf("probe of %s: %d of %d checks failed", o.device, n, len(rep.Checks))
	}
	return nil
}

// resolveSecret finds the controller's password: --secret, else the
// environment, else the file the server wrote in its data folder.
func (o *probeOptions) resolveSecret(cmd *cobra.Command) (string, error) {
	if cmd.Flags().Changed("secret") {
		return o.secret, nil
	}
	if s := strings.TrimSpace(os.Getenv(envControllerSecret)); s != "" {
		return s, nil
	}
	path := filepath.Join(o.data, controllerSecretFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no controller secret: pass --secret, set %s, or run on the "+
			"server's machine with --data pointing at its data folder (%v)", envControllerSecret, err)
	}
	return strings.TrimSpace(string(b)), nil
}
