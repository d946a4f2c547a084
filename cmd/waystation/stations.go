package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/devices"
)

const stationsPath = "api/v1/stations"

// addStationsCmd adds `stations` and its subcommands to root.
func addStationsCmd(root *cobra.Command) {
	cmd := &cobra.Command{
		Use:   "stations",
		Short: "Add, import and list rest stations on a running server",
	}
	cmd.AddCommand(newStationsAddCmd(), newStationsImportCmd(), newStationsListCmd(),
		newStationsNearestCmd())
	root.AddCommand(cmd)
}

func newStationsAddCmd() *cobra.Command {
	var o clientOptions
	var st devices.Station
	cmd := &cobra.Command{
		Use:   "add --id ID --name NAME --lat LAT --lon LON --hours HOURS",
		Short: "Add one station",
		Example: "  waystation stations add --id ys-001 --name 城关环卫驿站 --address 管仲大道18号 \\\n" +
			"    --lat 32.629 --lon 116.266 --org 县总工会 --hours 24h",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := st.Validate(); err != nil {
				return err
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			raw, err := c.post(cmd.Context(), stationsPath, st)
			if err != nil {
				return fmt.Errorf("add station %s: %w", st.ID, err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, s devices.Station) error {
				return p.stations([]devices.Station{s})
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&st.ID, "id", "", "station id: [a-z0-9][a-z0-9-]{0,31}, e.g. ys-001")
	f.StringVar(&st.Name, "name", "", "the name workers know it by")
	f.StringVar(&st.Address, "address", "", "street address")
	f.Float64Var(&st.Lat, "lat", 0, "latitude, degrees north (-90..90)")
	f.Float64Var(&st.Lon, "lon", 0, "longitude, degrees east (-180..180)")
	f.StringVar(&st.Org, "org", "", "the partner organisation that hosts it")
	f.StringVar(&st.Hours, "hours", "", `opening hours: "24h" or "HH:MM-HH:MM" in local time`)
	for _, name := range []string{"id", "name", "lat", "lon", "hours"} {
		_ = cmd.MarkFlagRequired(name) // fails only for a flag that does not exist
	}
	addClientFlags(cmd, &o)
	return cmd
}

func newStationsImportCmd() *cobra.Command {
	var o clientOptions
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Add every station of a CSV or YAML file, all or none",
		Long: "import reads stations from FILE (.csv with a header row, or .yaml/.yml with a\n" +
			"list) and adds them all in one go: if any station is wrong, or already exists,\n" +
			"none is added. The file is checked here first, so problems are reported with\n" +
			"their line.\n\n" +
			"Columns and keys: id, name, lat, lon, hours (required), address, org.",
		Example: "  waystation stations import stations.csv\n" +
			"  waystation stations import --dry-run stations.yaml",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			list, err := devices.ParseStationsFile(file)
			if err != nil {
				return err
			}
			if dryRun {
				_, err := fmt.Fprintf(cmd.OutOrStdout(),
					"%s: %d stations, all valid (nothing sent: --dry-run)\n", file, len(list))
				return err
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			raw, err := c.post(cmd.Context(), stationsPath, list)
			if err != nil {
				return fmt.Errorf("import %s: nothing was added: %w", file, err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, added []devices.Station) error {
				_, err := fmt.Fprintf(p.out, "imported %d stations from %s\n", len(added), file)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check the file only; send nothing")
	addClientFlags(cmd, &o)
	return cmd
}

func newStationsListCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every station",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			raw, err := c.get(cmd.Context(), stationsPath, nil)
			if err != nil {
				return fmt.Errorf("list stations: %w", err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, list []devices.Station) error {
				if len(list) == 0 {
					_, err := fmt.Fprintln(p.out, "no stations yet: add one with "+
						"`waystation stations add`, or many with `waystation stations import`")
					return err
				}
				return p.stations(list)
			})
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

// stations prints stations as a table.
func (p *printer) stations(list []devices.Station) error {
	rows := [][]string{{"ID", "NAME", "HOURS", "LAT", "LON", "ORG", "ADDRESS", "ADDED"}}
	for _, s := range list {
		rows = append(rows, []string{s.ID, s.Name, s.Hours, coordinate(s.Lat), coordinate(s.Lon),
			orDash(s.Org), orDash(s.Address), p.when(s.Created)})
	}
	return p.table(rows)
}

func coordinate(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
