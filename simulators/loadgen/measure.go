package loadgen

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// quantiles returns the q quantiles of d (nearest rank); d is sorted.
func quantiles(d []time.Duration, q []float64) []time.Duration {
	out := make([]time.Duration, len(q))
	if len(d) == 0 {
		return out
	}
	slices.Sort(d)
	for i, x := range q {
		k := int(math.Ceil(x*float64(len(d)))) - 1
		out[i] = d[min(max(k, 0), len(d)-1)]
	}
	return out
}

// Scrape is one reading of a Prometheus /metrics page.
type Scrape map[string]*dto.MetricFamily

// ReadMetrics fetches and parses url (loopback only).
func ReadMetrics(ctx context.Context, url string) (Scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if err := CheckLoopback(req.URL.Host); err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return Scrape(mfs), nil
}

// Value returns the sum of the counters or gauges name whose labels include
// every pair of labels (given as "k", "v", ...).
func (s Scrape) Value(name string, labels ...string) float64 {
	mf := s[name]
	if mf == nil {
		return 0
	}
	var sum float64
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum
}

// Histogram is the cumulative buckets of a histogram: upper bounds
// (seconds) and counts.
type Histogram struct {
	Bounds []float64
	Counts []float64
	Total  float64
}

// Histogram returns the histogram name (the first series).
func (s Scrape) Histogram(name string) Histogram {
	mf := s[name]
	if mf == nil || len(mf.GetMetric()) == 0 || mf.GetMetric()[0].Histogram == nil {
		return Histogram{}
	}
	h := mf.GetMetric()[0].GetHistogram()
	var out Histogram
	for _, b := range h.GetBucket() {
		out.Bounds = append(out.Bounds, b.GetUpperBound())
		out.Counts = append(out.Counts, float64(b.GetCumulativeCount()))
	}
	out.Total = float64(h.GetSampleCount())
	return out
}

// Sub returns h minus an earlier reading of the same histogram.
func (h Histogram) Sub(earlier Histogram) Histogram {
	out := Histogram{Bounds: h.Bounds, Total: h.Total - earlier.Total}
	for i := range h.Counts {
		c := h.Counts[i]
		if i < len(earlier.Counts) {
			c -= earlier.Counts[i]
		}
		out.Counts = append(out.Counts, c)
	}
	return out
}

// Quantile estimates quantile q (0..1) by linear interpolation inside the
// bucket it falls in, and returns that bucket's bounds too. Past the last
// bound it returns +Inf.
func (h Histogram) Quantile(q float64) (est, lo, hi time.Duration) {
	if h.Total == 0 {
		return 0, 0, 0
	}
	rank := q * h.Total
	prevBound, prevCount := 0.0, 0.0
	for i, b := range h.Bounds {
		c := h.Counts[i]
		if math.IsInf(b, 1) {
			break // the +Inf bucket: past the last bound
		}
		if c >= rank {
			f := 0.0
			if c > prevCount {
				f = (rank - prevCount) / (c - prevCount)
			}
			sec := prevBound + f*(b-prevBound)
			return seconds(sec), seconds(prevBound), seconds(b)
		}
		prevBound, prevCount = b, c
	}
	inf := time.Duration(math.MaxInt64)
	return inf, seconds(prevBound), inf
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Proc is a reading of a process's CPU time and resident memory.
type Proc struct {
	At     time.Time
	CPU    time.Duration // user + system
	RSS    int64         // bytes
	HWM    int64         // peak RSS, bytes
	Thread int
}

// clockTicks is USER_HZ, the unit of CPU times in /proc/PID/stat; 100 on
// every Linux this runs on.
const clockTicks = 100

// ReadProc reads /proc/PID/stat and /proc/PID/status.
func ReadProc(pid int) (Proc, error) {
	p := Proc{At: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, err
	}
	// The command name may hold spaces; fields count from after ")".
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return p, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// Fields 14 and 15 of stat (utime, stime) are 12 and 13 after ")".
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return p, fmt.Errorf("/proc/%d/stat: bad cpu times", pid)
	}
	p.CPU = time.Duration(ut+st) * time.Second / clockTicks

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			p.RSS = n << 10
		case "VmHWM":
			p.HWM = n << 10
		case "Threads":
			p.Thread = int(n)
		}
	}
	return p, nil
}

// CPUShare is the share of one core the process used between two readings.
func CPUShare(a, b Proc) float64 {
	wall := b.At.Sub(a.At)
	if wall <= 0 {
		return 0
	}
	return float64(b.CPU-a.CPU) / float64(wall)
}
