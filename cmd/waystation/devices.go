package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

const devicesPath = "api/v1/devices"

// addDevicesCmd adds `devices` and its subcommands to root.
func addDevicesCmd(root *cobra.Command) {
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "Register devices and read their twins on a running server",
	}
	cmd.AddCommand(newDevicesAddCmd(), newDevicesListCmd(), newDevicesShowCmd(),
		newDeviceCommandCmd("reboot", schemas.CmdReboot, "Reboot a device"),
		newDeviceCommandCmd("ping", schemas.CmdPing, "Ask a device to answer and report its state now"))
	root.AddCommand(cmd)
}

func newDevicesAddCmd() *cobra.Command {
	var o clientOptions
	var d devices.Device
	var kind string
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "add --station S --kind K --id D",
		Short: "Register a device and print its secret, shown this once",
		Long: "add registers a device at a station and prints the secret it logs in to the\n" +
			"MQTT broker with (username: the device id). The server keeps only a hash of the\n" +
			"secret, so it cannot be shown again.",
		Example: "  waystation devices add --station ys-001 --kind ac --id ys-001-ac1 \\\n" +
			"    --model KFR-35GW --interval 30s",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d.Kind = schemas.Kind(kind)
			if interval < 0 || interval%time.Second != 0 {
				return fmt.Errorf("--interval %v: want whole seconds, e.g. 30s", interval)
			}
			d.IntervalS = int(interval / time.Second)
			if err := checkID("station", d.Station); err != nil {
				return err
			}
			if err := d.Validate(); err != nil {
				return err
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			raw, err := c.post(cmd.Context(), devicesPath, d)
			if err != nil {
				return fmt.Errorf("register device %s: %w", d.ID, err)
			}
			return showNewDevice(cmd, c, o.output, raw)
		},
	}
	f := cmd.Flags()
	f.StringVar(&d.Station, "station", "", "the station it is installed at")
	f.StringVar(&kind, "kind", "", "lock, ac, charger or aed")
	f.StringVar(&d.ID, "id", "", "device id, also its MQTT username: [a-z0-9][a-z0-9-]{0,31}")
	f.StringVar(&d.Model, "model", "", "vendor model")
	f.DurationVar(&interval, "interval", 0,
		"how often it sends telemetry, whole seconds; it sets when silence means offline")
	for _, name := range []string{"station", "kind", "id"} {
		_ = cmd.MarkFlagRequired(name) // fails only for a flag that does not exist
	}
	addClientFlags(cmd, &o)
	return cmd
}

// secretNote goes with every secret printed: there is no second chance.
const secretNote = "Keep this secret now: the server stores only its hash and cannot show it " +
	"again.\nThe device logs in to MQTT with its id as username and this secret as password."

func showNewDevice(cmd *cobra.Command, c *client, format outputFormat, raw []byte) error {
	if format == outputJSON {
		if err := writeJSON(cmd.OutOrStdout(), raw); err != nil {
			return err
		}
		// On stderr, so stdout stays one JSON document for scripts.
		_, err := fmt.Fprintln(cmd.ErrOrStderr(), secretNote)
		return err
	}
	return show(cmd, c, format, raw, func(p *printer, nd controller.NewDevice) error {
		_, err := fmt.Fprintf(p.out, "registered %s device %s at station %s\n\nsecret: %s\n\n%s\n",
			nd.Kind, nd.ID, nd.Station, nd.Secret, secretNote)
		return err
	})
}

func newDevicesListCmd() *cobra.Command {
	var o clientOptions
	var station string
	cmd := &cobra.Command{
		Use:   "list [--station S]",
		Short: "List devices with their presence",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			query := url.Values{}
			if station != "" {
				if err := checkID("station", station); err != nil {
					return err
				}
				query.Set("station", station)
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			raw, err := c.get(cmd.Context(), devicesPath, query)
			if err != nil {
				return fmt.Errorf("list devices: %w", err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, list []controller.DeviceView) error {
				if len(list) == 0 {
					msg := "no devices registered yet: add one with `waystation devices add`"
					if station != "" {
						msg = "no devices at station " + station
					}
					_, err := fmt.Fprintln(p.out, msg)
					return err
				}
				return p.devices(list)
			})
		},
	}
	cmd.Flags().StringVar(&station, "station", "", "only the devices of this station")
	addClientFlags(cmd, &o)
	return cmd
}

func newDevicesShowCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "show DEVICE",
		Short: "Show a device and its twin: presence, firmware, last reported state",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if err := checkID("device", id); err != nil {
				return err
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			raw, err := c.get(cmd.Context(), devicesPath+"/"+id, nil)
			if err != nil {
				return fmt.Errorf("show device %s: %w", id, err)
			}
			return show(cmd, c, o.output, raw, (*printer).device)
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

// checkID refuses an id the platform cannot hold before it goes into a
// URL, where ".." or "/" would change the route.
func checkID(what, id string) error {
	if !schemas.ValidID(id) {
		return fmt.Errorf("%s id %q: want [a-z0-9][a-z0-9-]{0,31}", what, id)
	}
	return nil
}

// devices prints devices as a table.
func (p *printer) devices(list []controller.DeviceView) error {
	rows := [][]string{{"STATION", "DEVICE", "KIND", "MODEL", "FIRMWARE", "ONLINE", "LAST SEEN"}}
	for _, v := range list {
		model, firmware, lastSeen := v.Model, v.Firmware, "-"
		if v.Twin != nil {
			model = firstSet(v.Twin.Model, model)
			firmware = firstSet(v.Twin.Firmware, firmware)
			lastSeen = p.when(v.Twin.LastSeen)
		}
		rows = append(rows, []string{v.Station, v.ID, string(v.Kind), orDash(model),
			orDash(firmware), presence(v.Twin), lastSeen})
	}
	return p.table(rows)
}

// device prints one device and its twin as a list of fields.
func (p *printer) device(v controller.DeviceView) error {
	rows := [][]string{
		{"device", v.ID},
		{"station", v.Station},
		{"kind", string(v.Kind)},
		{"registered", p.when(v.Created)},
	}
	tw := v.Twin
	if tw == nil {
		rows = append(rows,
			[]string{"model", orDash(v.Model)},
			[]string{"firmware", orDash(v.Firmware)},
			[]string{"interval", seconds(v.IntervalS)},
			[]string{"online", presence(nil)})
		return p.table(rows)
	}

	rows = append(rows,
		[]string{"model", orDash(firstSet(tw.Model, v.Model))},
		[]string{"firmware", orDash(firstSet(tw.Firmware, v.Firmware))},
		[]string{"interval", seconds(firstSet(tw.IntervalS, v.IntervalS))},
		[]string{"online", presence(tw)},
		[]string{"last seen", p.whenAgo(tw.LastSeen)})
	if tw.Online {
		rows = append(rows, []string{"connected since", p.whenAgo(tw.ConnectedSince)})
	} else if !tw.OfflineSince.IsZero() {
		rows = append(rows, []string{"offline since", p.whenAgo(tw.OfflineSince)})
	}
	rows = append(rows,
		[]string{"clock skew", skew(tw.ClockSkewMS)},
		[]string{"messages", fmt.Sprintf("%d (last seq %d)", tw.Messages, tw.Seq)})
	if tw.Invalid > 0 {
		rows = append(rows, []string{"invalid", fmt.Sprintf("%d, last at %s: %s",
			tw.Invalid, p.when(tw.InvalidAt), tw.LastInvalid)})
	}
	if len(tw.State) == 0 {
		rows = append(rows, []string{"state", "none reported yet"})
		return p.table(rows)
	}
	rows = append(rows, []string{"state", "reported " + p.whenAgo(tw.StateAt)})
	rows = append(rows, stateRows(tw.State)...)
	return p.table(rows)
}

// stateRows lists the fields of a reported state, sorted by name; a list
// (a charger's slots) takes a line per item.
func stateRows(state json.RawMessage) [][]string {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(state, &fields); err != nil {
		return [][]string{{"  (state)", string(state)}}
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)

	var rows [][]string
	for _, name := range names {
		var items []json.RawMessage
		if json.Unmarshal(fields[name], &items) == nil && len(items) > 0 {
			for i, item := range items {
				key := ""
				if i == 0 {
					key = "  " + name
				}
				rows = append(rows, []string{key, compactJSON(item)})
			}
			continue
		}
		rows = append(rows, []string{"  " + name, compactJSON(fields[name])})
	}
	return rows
}

// compactJSON shows a JSON value on one line; a string without its quotes.
func compactJSON(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}

func presence(tw *devices.Twin) string {
	switch {
	case tw == nil || (tw.LastSeen.IsZero() && !tw.Online):
		return "never seen"
	case tw.Online:
		return "yes"
	}
	return "no"
}

func seconds(s int) string {
	if s <= 0 {
		return "-"
	}
	return (time.Duration(s) * time.Second).String()
}

// skew says how far the device's clock is from the platform's.
func skew(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case ms > 0:
		return "+" + d.String() + " (device ahead)"
	case ms < 0:
		return d.String() + " (device behind)"
	}
	return "0s"
}

// firstSet is the first of a, b that is not the zero value.
func firstSet[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}
