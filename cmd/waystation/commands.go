package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/schemas"
)

const commandsPath = "api/v1/commands"

// addCommandCmds adds the commands that send device commands (ac, lock,
// charger) and `commands`, which reads their log.
func addCommandCmds(root *cobra.Command) {
	ac := &cobra.Command{Use: "ac", Short: "Switch air conditioners on a running server"}
	ac.AddCommand(newACSetCmd())
	lock := &cobra.Command{Use: "lock", Short: "Unlock a door or change a door terminal's mode"}
	lock.AddCommand(newLockUnlockCmd(), newLockModeCmd())
	charger := &cobra.Command{Use: "charger", Short: "Switch a charger cabinet's slots"}
	charger.AddCommand(newChargerSlotCmd())
	log := &cobra.Command{Use: "commands", Short: "Read the log of commands sent to devices"}
	log.AddCommand(newCommandsListCmd(), newCommandsShowCmd())
	root.AddCommand(ac, lock, charger, log)
}

// sendFlags are the flags of every command that sends a device command.
type sendFlags struct {
	expires time.Duration
	reason  string
	wait    time.Duration
}

func addSendFlags(cmd *cobra.Command, s *sendFlags) {
	f := cmd.Flags()
	f.DurationVar(&s.expires, "expires", 0, "how long the command may wait for the device "+
		"(default the server's, 2m unless set otherwise)")
	f.StringVar(&s.reason, "reason", "", "why, for the log")
	f.DurationVar(&s.wait, "wait", 0, "wait this long for the devices' answers (0: do not wait)")
}

func (s *sendFlags) check() error {
	switch {
	case s.expires < 0 || (s.expires > 0 && s.expires < time.Second):
		return fmt.Errorf("--expires %v: want at least 1s, e.g. 2m", s.expires)
	case s.wait < 0:
		return fmt.Errorf("--wait %v: want a duration, e.g. 30s", s.wait)
	}
	return nil
}

// body builds the request of one command.
func (s *sendFlags) body(name string, args map[string]any) controller.CommandBody {
	b := controller.CommandBody{Name: name, Args: args, Reason: s.reason}
	if s.expires > 0 {
		b.ExpiresIn = s.expires.String()
	}
	return b
}

func newACSetCmd() *cobra.Command {
	var o clientOptions
	var s sendFlags
	var station, device, power, mode, fan string
	var setpoint float64
	cmd := &cobra.Command{
		Use:   "set --station S [--device D] [--power on|off] [--mode M] [--setpoint C] [--fan F]",
		Short: "Set the air conditioners of a station (all of them unless --device names one)",
		Long: "set sends ac.set to one AC, or to every AC of the station. Give at least one of\n" +
			"--power, --mode (cool, heat, fan, dry, auto), --setpoint (16-32 °C) and --fan\n" +
			"(auto, low, mid, high). A device that is away gets the command when it is back,\n" +
			"unless it expired first; with --wait the answers are shown.",
		Example: "  waystation ac set --station ys-001 --power on --mode cool --setpoint 26\n" +
			"  waystation ac set --station ys-001 --device ys-001-ac --power off --wait 30s",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := s.check(); err != nil {
				return err
			}
			if err := checkID("station", station); err != nil {
				return err
			}
			if device != "" {
				if err := checkID("device", device); err != nil {
					return err
				}
			}
			args := map[string]any{}
			switch strings.ToLower(power) {
			case "":
			case "on", "true":
				args["power"] = true
			case "off", "false":
				args["power"] = false
			default:
				return fmt.Errorf("--power %q: want on or off", power)
			}
			if mode != "" {
				args["mode"] = mode
			}
			if cmd.Flags().Changed("setpoint") {
				args["setpoint_c"] = setpoint
			}
			if fan != "" {
				args["fan"] = fan
			}
			if len(args) == 0 {
				return errors.New("nothing to set: give --power, --mode, --setpoint or --fan")
			}
			// Check the arguments here too, so a typo fails before any AC
			// of the station gets anything.
			probe := schemas.Command{ID: "check", Name: schemas.CmdACSet, Args: args, ExpiresAt: 1}
			if err := probe.Validate(); err != nil {
				return fmt.Errorf("ac.set: %w", err)
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			targets, err := stationACs(cmd.Context(), c, station)
			if err != nil {
				return err
			}
			if device != "" {
				if !slices.Contains(targets, device) {
					return fmt.Errorf("%s is not an air conditioner of station %s (its ACs: %s)",
						device, station, strings.Join(targets, ", "))
				}
				targets = []string{device}
			}
			return sendAll(cmd, c, o.output, &s, targets, s.body(schemas.CmdACSet, args))
		},
	}
	f := cmd.Flags()
	f.StringVar(&station, "station", "", "the station")
	f.StringVar(&device, "device", "", "one AC of the station (default: all of them)")
	f.StringVar(&power, "power", "", "on or off")
	f.StringVar(&mode, "mode", "", "cool, heat, fan, dry or auto")
	f.Float64Var(&setpoint, "setpoint", 0, "setpoint, °C (16-32)")
	f.StringVar(&fan, "fan", "", "auto, low, mid or high")
	_ = cmd.MarkFlagRequired("station")
	addSendFlags(cmd, &s)
	addClientFlags(cmd, &o)
	return cmd
}

// stationACs returns the ACs of a station.
func stationACs(ctx context.Context, c *client, station string) ([]string, error) {
	raw, err := c.get(ctx, devicesPath, url.Values{"station": {station}})
	if err != nil {
		return nil, fmt.Errorf("list the devices of %s: %w", station, err)
	}
	var list []controller.DeviceView
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("read the server's answer: %w", err)
	}
	var out []string
	for _, d := range list {
		if d.Kind == schemas.KindAC {
			out = append(out, d.ID)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("station %s has no air conditioner", station)
	}
	return out, nil
}

func newLockUnlockCmd() *cobra.Command {
	var o clientOptions
	var s sendFlags
	var seconds int
	cmd := &cobra.Command{
		Use:     "unlock DEVICE [--seconds N]",
		Short:   "Unlock a door for a few seconds",
		Example: "  waystation lock unlock ys-001-lock --seconds 10",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			args := map[string]any{}
			if cmd.Flags().Changed("seconds") {
				if seconds < 1 || seconds > schemas.MaxUnlockS {
					return fmt.Errorf("--seconds %d: want 1 to %d", seconds, schemas.MaxUnlockS)
				}
				args["seconds"] = seconds
			}
			return sendOne(cmd, &o, &s, a[0], s.body(schemas.CmdLockUnlock, args))
		},
	}
	cmd.Flags().IntVar(&seconds, "seconds", 0, "how long, 1 to 600 (default the terminal's)")
	addSendFlags(cmd, &s)
	addClientFlags(cmd, &o)
	return cmd
}

func newLockModeCmd() *cobra.Command {
	var o clientOptions
	var s sendFlags
	modes := []string{schemas.LockNormal, schemas.LockOpen, schemas.LockLockdown}
	cmd := &cobra.Command{
		Use:   "mode DEVICE normal|open|lockdown",
		Short: "Set a door terminal's mode: credentials needed, held open, or nobody enters",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, a []string) error {
			if !slices.Contains(modes, a[1]) {
				return fmt.Errorf("mode %q: want one of %s", a[1], strings.Join(modes, ", "))
			}
			return sendOne(cmd, &o, &s, a[0],
				s.body(schemas.CmdLockMode, map[string]any{"mode": a[1]}))
		},
	}
	addSendFlags(cmd, &s)
	addClientFlags(cmd, &o)
	return cmd
}

func newChargerSlotCmd() *cobra.Command {
	var o clientOptions
	var s sendFlags
	cmd := &cobra.Command{
		Use:     "slot DEVICE SLOT on|off",
		Short:   "Switch one slot of a charger cabinet on or off",
		Example: "  waystation charger slot ys-001-chg 3 off --reason \"slot 3 at 63 °C\"",
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, a []string) error {
			slot, err := strconv.Atoi(a[1])
			if err != nil || slot < 1 || slot > schemas.MaxSlots {
				return fmt.Errorf("slot %q: want 1 to %d", a[1], schemas.MaxSlots)
			}
			var on bool
			switch a[2] {
			case "on":
				on = true
			case "off":
			default:
				return fmt.Errorf("%q: want on or off", a[2])
			}
			return sendOne(cmd, &o, &s, a[0],
				s.body(schemas.CmdChargerSlot, map[string]any{"slot": slot, "on": on}))
		},
	}
	addSendFlags(cmd, &s)
	addClientFlags(cmd, &o)
	return cmd
}

// newDeviceCommandCmd is `devices reboot` or `devices ping`: a command
// without arguments.
func newDeviceCommandCmd(use, name, short string) *cobra.Command {
	var o clientOptions
	var s sendFlags
	cmd := &cobra.Command{
		Use:   use + " DEVICE",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			return sendOne(cmd, &o, &s, a[0], s.body(name, nil))
		},
	}
	addSendFlags(cmd, &s)
	addClientFlags(cmd, &o)
	return cmd
}

// sendOne sends one command to one device.
func sendOne(cmd *cobra.Command, o *clientOptions, s *sendFlags, device string,
	body controller.CommandBody) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := checkID("device", device); err != nil {
		return err
	}
	c, err := o.connect(cmd)
	if err != nil {
		return err
	}
	defer c.close()
	return sendAll(cmd, c, o.output, s, []string{device}, body)
}

// sendAll sends body to each device, then waits for the answers when
// asked, and shows the commands.
func sendAll(cmd *cobra.Command, c *client, format outputFormat, s *sendFlags, targets []string,
	body controller.CommandBody) error {
	var recs []controller.CommandRecord
	var failed []error
	for _, d := range targets {
		raw, err := c.post(cmd.Context(), devicesPath+"/"+d+"/commands", body)
		if err != nil {
			failed = append(failed, fmt.Errorf("%s to %s: %w", body.Name, d, err))
			continue
		}
		var rec controller.CommandRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("read the server's answer: %w", err)
		}
		recs = append(recs, rec)
	}
	if s.wait > 0 && len(recs) > 0 {
		var err error
		if recs, err = waitAnswers(cmd.Context(), c, recs, s.wait); err != nil {
			failed = append(failed, err)
		}
	}
	if len(recs) > 0 {
		raw, err := json.Marshal(recs)
		if err != nil {
			return err
		}
		if err := show(cmd, c, format, raw, (*printer).commands); err != nil {
			return err
		}
	}
	if s.wait > 0 {
		for _, r := range recs {
			if r.State != controller.CommandAcknowledged {
				failed = append(failed, fmt.Errorf("%s %s to %s: %s%s", r.Name, r.ID, r.Device,
					r.State, colonError(r.Error)))
			}
		}
	}
	return errors.Join(failed...)
}

func colonError(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// waitAnswers polls the commands until each is answered or expired, or
// until the wait is over.
func waitAnswers(ctx context.Context, c *client, recs []controller.CommandRecord,
	wait time.Duration) ([]controller.CommandRecord, error) {
	deadline := time.Now().Add(wait)
	for {
		open := 0
		for i, r := range recs {
			if r.State == controller.CommandPending || r.State == controller.CommandSent {
				raw, err := c.get(ctx, commandsPath+"/"+r.ID, nil)
				if err != nil {
					return recs, fmt.Errorf("command %s: %w", r.ID, err)
				}
				if err := json.Unmarshal(raw, &recs[i]); err != nil {
					return recs, fmt.Errorf("read the server's answer: %w", err)
				}
			}
			if s := recs[i].State; s == controller.CommandPending || s == controller.CommandSent {
				open++
			}
		}
		if open == 0 || time.Now().After(deadline) {
			return recs, nil
		}
		select {
		case <-ctx.Done():
			return recs, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func newCommandsListCmd() *cobra.Command {
	var o clientOptions
	var device, station, state, issuer, name, since string
	var limit int
	cmd := &cobra.Command{
		Use:   "list [--device D] [--station S] [--state X] [--issuer I] [--since T] [--limit N]",
		Short: "List commands, newest first",
		Example: "  waystation commands list --station ys-001 --since 24h\n" +
			"  waystation commands list --state expired -o json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for _, p := range []struct{ key, val string }{{"device", device},
				{"station", station}, {"state", state}, {"issuer", issuer}, {"name", name},
				{"since", since}} {
				if p.val != "" {
					q.Set(p.key, p.val)
				}
			}
			if state != "" && !slices.Contains(controller.CommandStates, state) {
				return fmt.Errorf("--state %q: want one of %s", state,
					strings.Join(controller.CommandStates, ", "))
			}
			if limit != 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()
			raw, err := c.get(cmd.Context(), commandsPath, q)
			if err != nil {
				return fmt.Errorf("list commands: %w", err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, list []controller.CommandRecord) error {
				if len(list) == 0 {
					_, err := fmt.Fprintln(p.out, "no commands")
					return err
				}
				return p.commands(list)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&device, "device", "", "only commands to this device")
	f.StringVar(&station, "station", "", "only commands to this station's devices")
	f.StringVar(&state, "state", "", "only commands in this state: "+
		strings.Join(controller.CommandStates, ", "))
	f.StringVar(&issuer, "issuer", "", `only commands of this issuer, e.g. "operator:admin"`)
	f.StringVar(&name, "name", "", "only commands of this name, e.g. ac.set")
	f.StringVar(&since, "since", "", "only commands created since, a time (RFC 3339) or "+
		"a duration back from now (24h)")
	f.IntVar(&limit, "limit", 0, "at most this many (default 100)")
	addClientFlags(cmd, &o)
	return cmd
}

func newCommandsShowCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one command: who asked for what, when, and what happened",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			id := a[0]
			if id == "" || len(id) > schemas.MaxCommandIDLen || strings.ContainsAny(id, "/?#%.") {
				return fmt.Errorf("command id %q: want an id as `commands list` shows", id)
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()
			raw, err := c.get(cmd.Context(), commandsPath+"/"+id, nil)
			if err != nil {
				return fmt.Errorf("show command %s: %w", id, err)
			}
			return show(cmd, c, o.output, raw, (*printer).command)
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

// commands prints commands as a table.
func (p *printer) commands(list []controller.CommandRecord) error {
	rows := [][]string{{"ID", "DEVICE", "NAME", "ARGS", "STATE", "ISSUER", "CREATED", "RESULT"}}
	for _, r := range list {
		rows = append(rows, []string{r.ID, r.Device, r.Name, argsText(r.Args), r.State, r.Issuer,
			p.when(r.Created), resultText(r)})
	}
	return p.table(rows)
}

// command prints one command as a list of fields.
func (p *printer) command(r controller.CommandRecord) error {
	rows := [][]string{
		{"id:", r.ID},
		{"device:", r.Device + " (" + string(r.Kind) + ") at " + r.Station},
		{"command:", r.Name + " " + argsText(r.Args)},
		{"issuer:", r.Issuer},
		{"reason:", orDash(r.Reason)},
		{"state:", r.State},
		{"created:", p.when(r.Created)},
		{"expires:", p.when(r.ExpiresAt)},
		{"attempts:", strconv.Itoa(r.Attempts)},
		{"first sent:", p.when(r.FirstSent)},
		{"last sent:", p.when(r.LastSent)},
		{"done:", p.when(r.Done)},
		{"result:", resultText(r)},
	}
	if r.RoundTripMS > 0 {
		rows = append(rows, []string{"round trip:", strconv.FormatFloat(r.RoundTripMS, 'f', -1, 64) +
			" ms"})
	}
	if r.Effect != "" {
		rows = append(rows, []string{"effect:", r.Effect + colonError(r.EffectDetail)})
	}
	return p.table(rows)
}

// argsText shows arguments as name=value, sorted.
func argsText(args map[string]any) string {
	if len(args) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, args[k]))
	}
	return strings.Join(parts, " ")
}

// resultText is the device's answer, or what stands in for it.
func resultText(r controller.CommandRecord) string {
	switch {
	case r.OK != nil && *r.OK && r.LateAnswer:
		return "ok, after it expired"
	case r.OK != nil && *r.OK:
		if r.Effect != "" && r.Effect != controller.EffectChecking {
			return "ok, " + r.Effect
		}
		return "ok"
	case r.OK != nil:
		return "refused" + colonError(r.Error)
	case r.Error != "":
		return r.Error
	}
	return "-"
}
