package main

import (
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/controller"
)

const crewsPath = "api/v1/crews"

// addCrewsCmd adds `crews` and its subcommands to root.
func addCrewsCmd(root *cobra.Command) {
	cmd := &cobra.Command{
		Use:   "crews",
		Short: "Import and list crews' shift timetables and stations' climate policies",
	}
	cmd.AddCommand(newCrewsImportCmd(), newCrewsListCmd(), newCrewsDeleteCmd())
	root.AddCommand(cmd)
}

func newCrewsImportCmd() *cobra.Command {
	var o clientOptions
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import crews (and climate policies) from a YAML file, all or none",
		Long: "import sends a crews file to the server, which checks it whole: if anything is\n" +
			"wrong (a time, a date, a station that is not registered), nothing changes and\n" +
			"every problem is reported with its line. Crews of the file replace stored crews\n" +
			"of the same id; others stay. Needs the scheduler or admin role.\n\n" +
			"See the README (Crews and pre-cooling) for the file's fields.",
		Example: "  waystation crews import crews.yaml\n" +
			"  waystation crews import --dry-run crews.yaml",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			buf, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("read crews: %w", err)
			}
			// Checked here first (all but the stations being registered).
			tt, err := controller.ParseTimetable(file, buf, nil)
			if err != nil {
				return err
			}
			if dryRun {
				_, err := fmt.Fprintf(cmd.OutOrStdout(),
					"%s: %d crews, valid here (stations are checked by the server; nothing sent: "+
						"--dry-run)\n", file, len(tt.Crews))
				return err
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()
			raw, err := c.post(cmd.Context(), crewsPath,
				controller.CrewsFile{File: file, Content: string(buf)})
			if err != nil {
				return fmt.Errorf("import %s: nothing was changed: %w", file, err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, l controller.CrewList) error {
				_, err := fmt.Fprintf(p.out, "imported %d crews from %s\n", len(l.Crews), file)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check the file only; send nothing")
	addClientFlags(cmd, &o)
	return cmd
}

func newCrewsListCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List crews, their timetables and the climate policies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()
			raw, err := c.get(cmd.Context(), crewsPath, nil)
			if err != nil {
				return fmt.Errorf("list crews: %w", err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, l controller.CrewList) error {
				return p.crews(l)
			})
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

func newCrewsDeleteCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a crew; its runs that have not started are cancelled",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID("crew", args[0]); err != nil {
				return err
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()
			raw, err := c.call(cmd.Context(), http.MethodDelete, crewsPath+"/"+args[0], nil, nil)
			if err != nil {
				return fmt.Errorf("delete crew %s: %w", args[0], err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, cr controller.Crew) error {
				_, err := fmt.Fprintf(p.out, "deleted crew %s\n", cr.ID)
				return err
			})
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

// crews prints crews and policies for people.
func (p *printer) crews(l controller.CrewList) error {
	d := l.Policies.Defaults
	if _, err := fmt.Fprintf(p.out, "county policy: cool at >= %g °C to %g °C, heat at <= %g °C "+
		"to %g °C, rest %d min\n", d.CoolAtC, d.CoolToC, d.HeatAtC, d.HeatToC, d.RestMin); err != nil {
		return err
	}
	if len(l.Policies.Stations) > 0 {
		ids := make([]string, 0, len(l.Policies.Stations))
		for id := range l.Policies.Stations {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		rows := [][]string{{"STATION", "COOL AT", "COOL TO", "HEAT AT", "HEAT TO", "REST", "OFF"}}
		for _, id := range ids {
			sp := l.Policies.For(id)
			rows = append(rows, []string{id, ftoaC(sp.CoolAtC), ftoaC(sp.CoolToC), ftoaC(sp.HeatAtC),
				ftoaC(sp.HeatToC), fmt.Sprintf("%d min", sp.RestMin), fmt.Sprint(sp.Off)})
		}
		if err := p.table(rows); err != nil {
			return err
		}
	}
	if len(l.Crews) == 0 {
		_, err := fmt.Fprintln(p.out, "no crews yet: import a timetable with "+
			"`waystation crews import FILE`")
		return err
	}
	rows := [][]string{{"CREW", "NAME", "ZONE", "STATIONS", "WEEK", "SEASONS", "EXCEPTIONS"}}
	for _, cr := range l.Crews {
		rows = append(rows, []string{cr.ID, orDash(cr.Name), cr.TimeZone, stationList(cr.Stations),
			weekText(cr.Week), fmt.Sprint(len(cr.Seasons)), fmt.Sprint(len(cr.Exceptions))})
	}
	return p.table(rows)
}

func ftoaC(f float64) string { return fmt.Sprintf("%g °C", f) }

// stationList shows a few station ids and how many more.
func stationList(ids []string) string {
	if len(ids) <= 3 {
		return strings.Join(ids, ",")
	}
	return fmt.Sprintf("%s,... (%d)", strings.Join(ids[:3], ","), len(ids))
}

// weekText shows a weekly timetable compactly: days with the same times
// together.
func weekText(w controller.Week) string {
	days := []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	var parts []string
	for i := 0; i < len(days); {
		j := i + 1
		key := strings.Join(w[days[i]], " ")
		for j < len(days) && strings.Join(w[days[j]], " ") == key {
			j++
		}
		if key == "" {
			key = "-"
		}
		span := days[i]
		if j-i > 1 {
			span += "-" + days[j-1]
		}
		parts = append(parts, span+" "+key)
		i = j
	}
	return strings.Join(parts, "; ")
}
