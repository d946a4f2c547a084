package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/waystation/waystation/controller"
)

// benchFlags are serve's flags for measuring it.
type benchFlags struct {
	pprofAddr string // net/http/pprof listener; "" for none
}

func addBenchFlags(f *pflag.FlagSet, o *benchFlags) {
	f.StringVar(&o.pprofAddr, "pprof", "", "serve Go profiles (net/http/pprof) on this "+
		"loopback address, e.g. 127.0.0.1:6060; off by default")
}

func (o *benchFlags) check() error {
	if o.pprofAddr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(o.pprofAddr)
	if err != nil {
		return fmt.Errorf("--pprof %q: want host:port (%v)", o.pprofAddr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--pprof %q: profiles are served on a loopback address only", o.pprofAddr)
	}
	return nil
}

// delayBuckets are the bounds of waystation_telemetry_delay_seconds: 0.5 ms
// wide up to 3 ms, then the E12 series (each bound 10-22 % above the last)
// up to 2.2 s, so a percentile interpolated inside its bucket is close to
// the truth wherever a pipeline under load may be; then coarse up to the
// minutes a device with a wrong clock or a long backlog shows.
var delayBuckets = func() []float64 {
	b := []float64{0.0005, 0.001, 0.0015, 0.002, 0.0025, 0.003}
	e12 := []float64{10, 12, 15, 18, 22, 27, 33, 39, 47, 56, 68, 82}
	for decade := 0.0001; decade < 1; decade *= 10 {
		for _, m := range e12 {
			if v := m * decade; v > 0.003 && v <= 2.2 {
				// Rounded to the microsecond: the bounds print as written.
				b = append(b, math.Round(v*1e6)/1e6)
			}
		}
	}
	return append(b, 5, 10, 30, 60, 300)
}()

// openBench counts, for every telemetry message carrying the device's
// timestamp, the time from that timestamp to its twin being updated. It is
// how late device data is when the platform has it: on one clock (the load
// generator of `waystation loadgen`) the pipeline's latency, in the field
// also the devices' clock error. A timestamp ahead of the controller's
// clock counts as 0.
func (s *server) openBench() error {
	if err := s.o.bench.check(); err != nil {
		return err
	}
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "waystation_telemetry_delay_seconds",
		Help:    "From the timestamp in a telemetry message to its twin being updated.",
		Buckets: delayBuckets,
	})
	if err := s.reg.Register(h); err != nil {
		return fmt.Errorf("register telemetry delay: %w", err)
	}
	now := s.clock.Now
	s.in.Observe(func(o controller.Observation) {
		if o.Telem == nil || o.Telem.TS <= 0 || o.Retained {
			return
		}
		d := now().Sub(time.UnixMilli(o.Telem.TS))
		h.Observe(max(d.Seconds(), 0))
	})
	return nil
}

// runBench serves profiles when --pprof is set, until ctx ends.
func (s *server) runBench(ctx context.Context, g *errgroup.Group) {
	if s.o.bench.pprofAddr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	hs := &http.Server{Addr: s.o.bench.pprofAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	g.Go(func() error {
		err := hs.ListenAndServe()
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("--pprof: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		return hs.Close()
	})
	s.log.Info("profiles served", "addr", "http://"+s.o.bench.pprofAddr+"/debug/pprof/")
}
