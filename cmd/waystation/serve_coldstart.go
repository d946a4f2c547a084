package main

import (
	"runtime/debug"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/waystation/waystation/devices"
)

// loadDevices loads the registry and the twins side by side: at 40,000
// devices each is a few hundred milliseconds of decoding, in read
// transactions that do not wait for each other.
func (s *server) loadDevices() error {
	var g errgroup.Group
	var devs *devices.Registry
	var twin *devices.Twins
	g.Go(func() (err error) {
		devs, err = devices.NewRegistry(s.db, s.registryOptions())
		return err
	})
	g.Go(func() (err error) {
		twin, err = devices.NewTwins(s.db, devices.TwinsOptions{Logger: s.log.With("component", "twins")})
		return err
	})
	err := g.Wait()
	s.devs, s.twin = devs, twin
	return err
}

// startupGCPercent is the garbage collector's GOGC while serve starts.
// Loading the state of 40,000 devices allocates hundreds of megabytes of
// records that mostly stay: with the default 100 the collector ran cycle
// after cycle while the heap grew, about a quarter of the start's CPU.
const startupGCPercent = 400

// startupGC relaxes the collector for starting servers in this process
// (one, but tests start several at once) and puts the setting back when the
// last of them is ready or gone.
var startupGC struct {
	sync.Mutex
	starting int
	prev     int
}

// relaxGC raises GOGC to startupGCPercent until the returned function is
// called; calling that again does nothing. A GOGC already higher, or off,
// is left alone.
func relaxGC() (restore func()) {
	startupGC.Lock()
	if startupGC.starting == 0 {
		startupGC.prev = debug.SetGCPercent(startupGCPercent)
		if startupGC.prev < 0 || startupGC.prev >= startupGCPercent {
			debug.SetGCPercent(startupGC.prev)
		}
	}
	startupGC.starting++
	startupGC.Unlock()
	return sync.OnceFunc(func() {
		startupGC.Lock()
		defer startupGC.Unlock()
		startupGC.starting--
		if startupGC.starting == 0 {
			debug.SetGCPercent(startupGC.prev)
		}
	})
}
