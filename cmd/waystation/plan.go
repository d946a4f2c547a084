package main

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/controller"
)

const planPath = "api/v1/plan"

func addPlanCmd(root *cobra.Command) {
	var o clientOptions
	var date, station string
	var why bool
	cmd := &cobra.Command{
		Use:   "plan [--date YYYY-MM-DD] [--station S]",
		Short: "What the planner will do on a date, station by station",
		Long: "plan lists the runs of the stations' ACs before each shift change of the date\n" +
			"(default today): when each starts and stops, for which shift and crew, to what\n" +
			"target, with what lead time and why, and any warning that a station may not reach\n" +
			"its target. Times are the crew's own zone. Runs are fixed three and a half hours\n" +
			"before their shift; later ones may still move with the weather.",
		Example: "  waystation plan --date 2025-07-22\n" +
			"  waystation plan --station ys-001 -o json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if date != "" {
				if _, err := time.Parse(time.DateOnly, date); err != nil {
					return fmt.Errorf("--date %q: want YYYY-MM-DD", date)
				}
				q.Set("date", date)
			}
			if station != "" {
				if err := checkID("station", station); err != nil {
					return err
				}
				q.Set("station", station)
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()
			raw, err := c.get(cmd.Context(), planPath, q)
			if err != nil {
				return fmt.Errorf("plan: %w", err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, pl controller.Plan) error {
				return p.plan(pl, why)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&date, "date", "", "the date, YYYY-MM-DD (default today in the server's --tz)")
	f.StringVar(&station, "station", "", "only this station")
	f.BoolVar(&why, "why", false, "then say why, run by run")
	addClientFlags(cmd, &o)
	root.AddCommand(cmd)
}

// plan prints a plan as a table.
func (p *printer) plan(pl controller.Plan, why bool) error {
	if len(pl.Runs) == 0 {
		_, err := fmt.Fprintf(p.out, "no shift changes on %s: import crews with "+
			"`waystation crews import FILE`\n", pl.Date)
		return err
	}
	rows := [][]string{{"STATION", "SHIFT", "CREWS", "ACTION", "TARGET", "START", "STOP", "LEAD",
		"OUTDOOR", "STATE", "WARNINGS"}}
	for _, r := range pl.Runs {
		target, lead, outdoor := "-", "-", "-"
		if r.Action != controller.ActionNone {
			target = ftoaC(r.TargetC)
			lead = fmt.Sprintf("%d min", r.LeadMin)
		}
		if r.OutdoorC != nil {
			outdoor = ftoaC(*r.OutdoorC)
		}
		rows = append(rows, []string{r.Station, clock(r.Shift), strings.Join(r.Crews, ","), r.Action,
			target, clock(r.Start), clock(r.Stop), lead, outdoor, r.State,
			orDash(strings.Join(r.Warnings, "; "))})
	}
	if _, err := fmt.Fprintf(p.out, "plan for %s (made %s)\n", pl.Date, p.when(pl.At)); err != nil {
		return err
	}
	if err := p.table(rows); err != nil || !why {
		return err
	}
	for _, r := range pl.Runs {
		if _, err := fmt.Fprintf(p.out, "%s %s: %s\n", r.Station, clock(r.Shift), r.Why); err != nil {
			return err
		}
	}
	return nil
}

// clock shows a time of a plan as the wall clock of its own zone, with the
// date when it is not the plan's.
func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("01-02 15:04")
}
