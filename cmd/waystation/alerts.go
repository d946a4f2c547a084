package main

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/controller"
)

const (
	alertsPath   = "api/v1/alerts"
	silencesPath = "api/v1/silences"
)

// addAlertsCmd adds `alerts` and `silence` and their subcommands to root.
func addAlertsCmd(root *cobra.Command) {
	alerts := &cobra.Command{
		Use:   "alerts",
		Short: "List, acknowledge and resolve alerts",
		Long: "An alert is one problem of one device or station under one rule: firing until\n" +
			"someone acknowledges it, resolved when its condition clears or a person resolves\n" +
			"it. Repeats bump its count rather than raising new alerts.",
	}
	alerts.AddCommand(newAlertsListCmd(), newAlertsAckCmd(), newAlertsResolveCmd())
	silence := &cobra.Command{
		Use:   "silence",
		Short: "Keep the alerts of a station, device or rule from paging anyone for a while",
		Long: "A silenced alert is still recorded and listed, but notifies nobody until the\n" +
			"silence expires or is removed; if it still fires then, it notifies. An AED\n" +
			"cabinet opened is never silenced.",
	}
	silence.AddCommand(newSilenceAddCmd(), newSilenceListCmd(), newSilenceRemoveCmd())
	root.AddCommand(alerts, silence)
}

func newAlertsListCmd() *cobra.Command {
	var o clientOptions
	var state, severity, station string
	cmd := &cobra.Command{
		Use:     "list [--state firing] [--severity critical] [--station S]",
		Short:   "List alerts within your scope, newest first",
		Example: "  waystation alerts list --state firing\n  waystation alerts list --station ys-001 -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if state != "" && !slices.Contains(controller.AlertStates, state) {
				return fmt.Errorf("--state %q: want one of %s", state,
					strings.Join(controller.AlertStates, ", "))
			}
			if severity != "" && !slices.Contains(controller.Severities, severity) {
				return fmt.Errorf("--severity %q: want one of %s", severity,
					strings.Join(controller.Severities, ", "))
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()
			q := url.Values{}
			for k, v := range map[string]string{"state": state, "severity": severity,
				"station": station} {
				if v != "" {
					q.Set(k, v)
				}
			}
			raw, err := c.get(cmd.Context(), alertsPath, q)
			if err != nil {
				return fmt.Errorf("list alerts: %w", err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, list []controller.Alert) error {
				if len(list) == 0 {
					_, err := fmt.Fprintln(p.out, "no alerts")
					return err
				}
				rows := [][]string{{"ID", "SEVERITY", "STATE", "STATION", "DEVICE", "RULE", "COUNT",
					"LAST SEEN", "SUMMARY"}}
				for _, a := range list {
					st := a.State
					if a.Silenced {
						st += " (silenced)"
					}
					if a.Escalation > 0 {
						st += fmt.Sprintf(" (escalated %d)", a.Escalation)
					}
					if a.Parent != "" {
						st += " (under " + a.Parent + ")"
					}
					rows = append(rows, []string{a.ID, a.Severity, st, a.Station, orDash(a.Device),
						a.Rule, fmt.Sprint(a.Count), p.whenAgo(a.LastSeen), a.Summary})
				}
				return p.table(rows)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "only alerts in this state: "+strings.Join(controller.AlertStates, ", "))
	f.StringVar(&severity, "severity", "", "only alerts of this severity: "+
		strings.Join(controller.Severities, ", "))
	f.StringVar(&station, "station", "", "only the alerts of this station")
	addClientFlags(cmd, &o)
	return cmd
}

func newAlertsAckCmd() *cobra.Command {
	var o clientOptions
	var note string
	cmd := &cobra.Command{
		Use:     "ack ID [--note TEXT]",
		Short:   "Acknowledge a firing alert: you are on it (stops its escalation)",
		Example: `  waystation alerts ack 42 --note "technician on the way"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return alertChange(cmd, &o, args[0], "ack", map[string]string{"note": note},
				"acknowledge")
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "what you are doing about it")
	addClientFlags(cmd, &o)
	return cmd
}

func newAlertsResolveCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "resolve ID",
		Short: "Resolve an alert by hand (a forced door checked, an AED put back)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return alertChange(cmd, &o, args[0], "resolve", nil, "resolve")
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

// alertChange posts an ack or resolve and prints the alert after it.
func alertChange(cmd *cobra.Command, o *clientOptions, id, action string, in any,
	verb string) error {
	id = strings.TrimSpace(id)
	if id == "" || strings.ContainsAny(id, "/?#") {
		return fmt.Errorf("%q is not an alert id (see `waystation alerts list`)", clipArg(id))
	}
	c, err := o.connect(cmd)
	if err != nil {
		return err
	}
	defer c.close()
	raw, err := c.post(cmd.Context(), alertsPath+"/"+id+"/"+action, in)
	if err != nil {
		return fmt.Errorf("%s alert %s: %w", verb, id, err)
	}
	return show(cmd, c, o.output, raw, func(p *printer, a controller.Alert) error {
		_, err := fmt.Fprintf(p.out, "alert %s (%s at %s) is %s\n", a.ID, a.Rule, a.Station, a.State)
		return err
	})
}

func newSilenceAddCmd() *cobra.Command {
	var o clientOptions
	var station, device, rule, reason string
	var dur time.Duration
	cmd := &cobra.Command{
		Use:   "add --station S|--device D|--rule R --for 2h --reason TEXT",
		Short: "Silence the alerts of a station, device or rule for a while",
		Example: `  waystation silence add --station ys-001 --for 2h --reason "AC replaced by Li Gong"` +
			"\n  waystation silence add --rule lock.battery_low --for 24h --reason \"batteries ordered\"",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if station == "" && device == "" && rule == "" {
				return fmt.Errorf("give --station, --device or --rule")
			}
			if dur <= 0 {
				return fmt.Errorf("--for %v: want a positive duration such as 2h", dur)
			}
			if strings.TrimSpace(reason) == "" {
				return fmt.Errorf("--reason is required: say who is at work and why")
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()
			in := controller.SilenceRequest{Station: station, Device: device, Rule: rule,
				For: dur.String(), Reason: reason}
			raw, err := c.post(cmd.Context(), silencesPath, in)
			if err != nil {
				return fmt.Errorf("add silence: %w", err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, s controller.Silence) error {
				_, err := fmt.Fprintf(p.out, "silence %s of %s until %s\n", s.ID, silenceWhat(s),
					p.when(s.Expires))
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&station, "station", "", "silence this station's alerts")
	f.StringVar(&device, "device", "", "silence this device's alerts")
	f.StringVar(&rule, "rule", "", "silence this rule's alerts (with --station or --device: only there)")
	f.DurationVar(&dur, "for", 0, "how long, e.g. 2h or 90m")
	f.StringVar(&reason, "reason", "", "why: who is at work")
	addClientFlags(cmd, &o)
	return cmd
}

// silenceWhat says what a silence covers.
func silenceWhat(s controller.Silence) string {
	var parts []string
	if s.Station != "" {
		parts = append(parts, "station "+s.Station)
	}
	if s.Device != "" {
		parts = append(parts, "device "+s.Device)
	}
	if s.Rule != "" {
		parts = append(parts, "rule "+s.Rule)
	}
	return strings.Join(parts, ", ")
}

func newSilenceListCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the silences in force within your scope",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()
			raw, err := c.get(cmd.Context(), silencesPath, nil)
			if err != nil {
				return fmt.Errorf("list silences: %w", err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, list []controller.Silence) error {
				if len(list) == 0 {
					_, err := fmt.Fprintln(p.out, "no silences")
					return err
				}
				rows := [][]string{{"ID", "COVERS", "UNTIL", "BY", "REASON"}}
				for _, s := range list {
					rows = append(rows, []string{s.ID, silenceWhat(s), p.when(s.Expires),
						orDash(s.CreatedBy), s.Reason})
				}
				return p.table(rows)
			})
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

func newSilenceRemoveCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "End a silence now; alerts it kept quiet that still fire notify at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := strings.TrimSpace(args[0])
			if id == "" || strings.ContainsAny(id, "/?#") {
				return fmt.Errorf("%q is not a silence id (see `waystation silence list`)",
					clipArg(id))
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()
			raw, err := c.call(cmd.Context(), http.MethodDelete, silencesPath+"/"+id, nil, nil)
			if err != nil {
				return fmt.Errorf("remove silence %s: %w", id, err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, s controller.Silence) error {
				_, err := fmt.Fprintf(p.out, "removed silence %s of %s\n", s.ID, silenceWhat(s))
				return err
			})
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}
