package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/controller"
)

const usagePath = "api/v1/usage"

// outputCSV is the third output of the usage command, for spreadsheets.
const outputCSV outputFormat = "csv"

// usageOutput is the -o flag of the usage command: table, json or csv.
type usageOutput struct{ f *outputFormat }

func (u usageOutput) String() string { return string(*u.f) }
func (u usageOutput) Type() string   { return "format" }

func (u usageOutput) Set(s string) error {
	if strings.EqualFold(s, string(outputCSV)) {
		*u.f = outputCSV
		return nil
	}
	if err := u.f.Set(s); err != nil {
		return errors.New("want table, json or csv")
	}
	return nil
}

func addUsageCmd(root *cobra.Command) {
	var o clientOptions
	var station, from, to, by string
	cmd := &cobra.Command{
		Use:   "usage [--station S] [--from D --to D] [--by hour|day]",
		Short: "Visits (granted entries) per station and day or hour, by method",
		Long: "usage reports the visits of stations within your scope: every granted entry\n" +
			"counts once, by face, nfc or qr. Days and hours are the server's time zone (--tz\n" +
			"of serve). --from and --to take dates (to included) or RFC 3339 times (to\n" +
			"excluded); by default the last seven days up to today. Periods without visits\n" +
			"are left out.",
		Example: "  waystation usage --station ys-001 --from 2025-07-01 --to 2025-07-31\n" +
			"  waystation usage --by hour --from 2025-07-15 --to 2025-07-15 -o csv > visits.csv",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			query := url.Values{}
			if station != "" {
				if err := checkID("station", station); err != nil {
					return err
				}
				query.Set("station", station)
			}
			for _, p := range []struct{ key, val string }{{"from", from}, {"to", to}} {
				if p.val != "" {
					query.Set(p.key, p.val)
				}
			}
			switch by {
			case controller.ByDay, controller.ByHour:
				query.Set("by", by)
			default:
				return fmt.Errorf("--by %q: want day or hour", by)
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			raw, err := c.get(cmd.Context(), usagePath, query)
			if err != nil {
				return fmt.Errorf("usage: %w", err)
			}
			if o.output == outputCSV {
				var rep controller.UsageReport
				if err := json.Unmarshal(raw, &rep); err != nil {
					return fmt.Errorf("read the server's answer: %w", err)
				}
				return writeUsageCSV(cmd, rep)
			}
			return show(cmd, c, o.output, raw, (*printer).usage)
		},
	}
	f := cmd.Flags()
	f.StringVar(&station, "station", "", "only this station")
	f.StringVar(&from, "from", "", "first day (YYYY-MM-DD) or time (RFC 3339)")
	f.StringVar(&to, "to", "", "last day (YYYY-MM-DD, included) or end time (RFC 3339, excluded)")
	f.StringVar(&by, "by", controller.ByDay, "a row per day or per hour")
	addClientFlags(cmd, &o)
	// The usage report alone also comes as CSV.
	out := f.Lookup("output")
	out.Value, out.Usage = usageOutput{&o.output}, "output: table, json or csv"
	root.AddCommand(cmd)
}

// usage prints a usage report as a table with a total line.
func (p *printer) usage(rep controller.UsageReport) error {
	layout := time.DateOnly
	if rep.By == controller.ByHour {
		layout = "2006-01-02 15:04"
	}
	_, err := fmt.Fprintf(p.out, "visits %s to %s (%s), by %s\n\n", rep.From.Format(timeLayout),
		rep.To.Format(timeLayout), rep.TimeZone, rep.By)
	if err != nil {
		return err
	}
	if len(rep.Rows) == 0 {
		_, err := fmt.Fprintln(p.out, "no visits in this period")
		return err
	}
	rows := [][]string{{"STATION", "START", "VISITS", "FACE", "NFC", "QR"}}
	for _, r := range rep.Rows {
		rows = append(rows, usageCells(r.Station, r.Start.Format(layout), r))
	}
	rows = append(rows, usageCells("total", "", rep.Total))
	return p.table(rows)
}

func usageCells(station, start string, r controller.UsageRow) []string {
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	return []string{station, start, n(r.Visits), n(r.Face), n(r.NFC), n(r.QR)}
}

// writeUsageCSV writes a report as CSV with a header row; times are RFC
// 3339 in the server's time zone.
func writeUsageCSV(cmd *cobra.Command, rep controller.UsageReport) error {
	w := csv.NewWriter(cmd.OutOrStdout())
	_ = w.Write([]string{"station", "start", "visits", "face", "nfc", "qr"})
	for _, r := range rep.Rows {
		_ = w.Write(usageCells(r.Station, r.Start.Format(time.RFC3339), r))
	}
	w.Flush()
	return w.Error()
}
