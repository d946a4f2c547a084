package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/controller"
)

func newStationsNearestCmd() *cobra.Command {
	var o clientOptions
	var lat, lon float64
	var need string
	var openNow bool
	var limit int
	cmd := &cobra.Command{
		Use:   "nearest --lat LAT --lon LON [--need charger|aed|cool] [--open-now]",
		Short: "The nearest stations by walking distance, with what they offer now",
		Long: "nearest asks the server for the stations nearest to a point, by a walking\n" +
			"estimate (straight line x 1.3, at 5 km/h), with what each offers right now:\n" +
			"open or not, free charger slots, a ready AED, the room temperature. Offline\n" +
			"devices offer nothing. It needs no operator token: workers' apps use the same\n" +
			"route.",
		Example: "  waystation stations nearest --lat 32.63 --lon 116.27 --need charger\n" +
			"  waystation stations nearest --lat 32.63 --lon 116.27 --open-now --limit 3 -o json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			query := url.Values{}
			query.Set("lat", strconv.FormatFloat(lat, 'f', -1, 64))
			query.Set("lon", strconv.FormatFloat(lon, 'f', -1, 64))
			if need != "" {
				query.Set("need", need)
			}
			if openNow {
				query.Set("open", "now")
			}
			query.Set("limit", strconv.Itoa(limit))
			c, err := o.connectPublic(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			raw, err := c.get(cmd.Context(), stationsPath+"/nearest", query)
			if err != nil {
				return fmt.Errorf("nearest stations: %w", err)
			}
			return show(cmd, c, o.output, raw, (*printer).nearest)
		},
	}
	f := cmd.Flags()
	f.Float64Var(&lat, "lat", 0, "where you are: latitude, degrees north")
	f.Float64Var(&lon, "lon", 0, "where you are: longitude, degrees east")
	f.StringVar(&need, "need", "", "only stations that have it now: charger, aed or cool")
	f.BoolVar(&openNow, "open-now", false, "only stations open now")
	f.IntVar(&limit, "limit", controller.DefaultNearestLimit,
		fmt.Sprintf("how many stations, 1 to %d", controller.MaxNearestLimit))
	for _, n := range []string{"lat", "lon"} {
		_ = cmd.MarkFlagRequired(n) // fails only for a flag that does not exist
	}
	o.output = outputTable
	f.StringVar(&o.server, "server", defaultServer, "the server's HTTP address (or $"+envServer+")")
	f.VarP(&o.output, "output", "o", "output: table or json")
	f.DurationVar(&o.timeout, "timeout", defaultRequestTimeout, "how long to wait for the answer")
	return cmd
}

// connectPublic is connect for a route that needs no operator token.
func (o *clientOptions) connectPublic(cmd *cobra.Command) (*client, error) {
	server := o.server
	if env := strings.TrimSpace(os.Getenv(envServer)); env != "" && !cmd.Flags().Changed("server") {
		server = env
	}
	base, err := parseServer(server)
	if err != nil {
		return nil, err
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %v: want a positive duration, e.g. 10s", o.timeout)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	return &client{base: base, timeout: o.timeout,
		http: &http.Client{Timeout: o.timeout, Transport: transport}}, nil
}

// nearest prints a nearest-station answer as a table.
func (p *printer) nearest(list []controller.NearestStation) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(p.out, "no station matches")
		return err
	}
	rows := [][]string{{"STATION", "NAME", "WALK", "OPEN", "CHARGER", "AED", "ROOM", "AC"}}
	for _, s := range list {
		room := "-"
		if s.RoomC != nil {
			room = strconv.FormatFloat(*s.RoomC, 'f', 1, 64) + " °C"
			if s.Cool {
				room += " (cool)"
			}
		}
		rows = append(rows, []string{s.ID, s.Name,
			fmt.Sprintf("%d min (%.1f km)", s.WalkMin, float64(s.DistanceM)/1000),
			yesNo(s.OpenNow), chargerCell(s), aedCell(s), room, has(s, "ac", yesNo(s.ACOn))})
	}
	return p.table(rows)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// has is cell when the station has a device of kind, else "-".
func has(s controller.NearestStation, kind, cell string) string {
	for _, k := range s.Kinds {
		if string(k) == kind {
			return cell
		}
	}
	return "-"
}

func chargerCell(s controller.NearestStation) string {
	return has(s, "charger", fmt.Sprintf("%d free, %d charged", s.ChargerFreeSlots,
		s.ChargerFullSlots))
}

func aedCell(s controller.NearestStation) string {
	if s.AEDReady {
		return "ready"
	}
	return has(s, "aed", "not ready")
}
