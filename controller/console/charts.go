package console

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/waystation/waystation/devices"
)

// Charts are drawn on the server as inline SVG: a polyline per series over
// a fixed time window, with hour ticks in the stations' time zone and a
// text summary for screen readers and for anyone who prefers numbers.

// HistoryFunc reads a device's telemetry history between from and to,
// oldest first; (*devices.History).Range is one.
type HistoryFunc func(device string, from, to time.Time) ([]devices.Sample, error)

// Chart geometry, in SVG units.
const (
	chartW       = 640.0
	chartH       = 200.0
	chartLeft    = 46.0
	chartRight   = 10.0
	chartTop     = 12.0
	chartBottom  = 26.0
	chartBuckets = 288 // five minutes each over a day
)

// chart is one drawing.
type chart struct {
	ID, Title, Unit string
	Width, Height   float64
	Left, Right     float64 // plot area, x
	Top, Bottom     float64 // plot area, y
	Paths           []chartPath
	XTicks, YTicks  []chartTick
	Empty           bool
	Summary         string
}

type chartPath struct {
	Name, Class, D string
	Points         int    // samples drawn
	Last           string // the latest value, as text
	LastX, LastY   float64
}

type chartTick struct {
	At    float64
	Label string
}

// series is named values over time.
type series struct {
	Name, Class string
	At          []time.Time
	V           []float64
}

// drawChart draws series between from and to.
func drawChart(id, title, unit string, from, to time.Time, loc *time.Location,
	ss []series) chart {
	c := chart{ID: id, Title: title, Unit: unit, Width: chartW, Height: chartH,
		Left: chartLeft, Right: chartW - chartRight, Top: chartTop, Bottom: chartH - chartBottom}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, v := range s.V {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if math.IsInf(lo, 1) {
		c.Empty = true
		c.Summary = "No data in this period."
		return c
	}
	lo, hi, step := niceRange(lo, hi)
	span := to.Sub(from).Seconds()
	x := func(t time.Time) float64 {
		return c.Left + (c.Right-c.Left)*t.Sub(from).Seconds()/span
	}
	y := func(v float64) float64 { return c.Bottom - (c.Bottom-c.Top)*(v-lo)/(hi-lo) }

	for v := lo; v <= hi+step/2; v += step {
		c.YTicks = append(c.YTicks, chartTick{At: round1(y(v)), Label: trimFloat(v)})
	}
	// A tick every three hours of local time.
	t := from.In(loc).Truncate(time.Hour)
	for t.Hour()%3 != 0 || t.Before(from) {
		t = t.Add(time.Hour)
	}
	for ; !t.After(to); t = t.Add(3 * time.Hour) {
		c.XTicks = append(c.XTicks, chartTick{At: round1(x(t)), Label: t.In(loc).Format("15:04")})
	}

	var summary []string
	bucketS := span / chartBuckets
	for _, s := range ss {
		p := chartPath{Name: s.Name, Class: s.Class}
		var d strings.Builder
		move := true
		emit := func(at time.Time, v float64) {
			cmd := "L"
			if move {
				cmd, move = "M", false
			}
			fmt.Fprintf(&d, "%s%s %s ", cmd, fmtf(x(at)), fmtf(y(v)))
			p.Points++
			p.LastX, p.LastY = round1(x(at)), round1(y(v))
		}
		// Each five minutes is drawn as their average; more than fifteen
		// minutes without data breaks the line.
		bucket, sum, n := -1, 0.0, 0
		var at time.Time
		sLo, sHi := math.Inf(1), math.Inf(-1)
		for i, v := range s.V {
			b := int(s.At[i].Sub(from).Seconds() / bucketS)
			if b != bucket && n > 0 {
				emit(at, sum/float64(n))
				move = b-bucket > 3
				sum, n = 0, 0
			}
			bucket, at = b, s.At[i]
			sum += v
			n++
			sLo, sHi = min(sLo, v), max(sHi, v)
		}
		if n > 0 {
			emit(at, sum/float64(n))
		}
		p.D = strings.TrimSpace(d.String())
		if len(s.V) > 0 {
			p.Last = trimFloat(s.V[len(s.V)-1]) + " " + unit
			summary = append(summary, fmt.Sprintf("%s %s to %s %s, latest %s", s.Name,
				trimFloat(sLo), trimFloat(sHi), unit, p.Last))
		}
		c.Paths = append(c.Paths, p)
	}
	c.Summary = strings.Join(summary, "; ") + "."
	return c
}

// niceRange widens lo..hi to round tick steps, about five ticks.
func niceRange(lo, hi float64) (float64, float64, float64) {
	if hi-lo < 1e-9 {
		lo, hi = lo-1, hi+1
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	return math.Floor(lo/step) * step, math.Ceil(hi/step) * step, step
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

func fmtf(f float64) string { return strconv.FormatFloat(round1(f), 'f', -1, 64) }
