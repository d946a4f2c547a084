package simulators

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/waystation/waystation/schemas"
)

// crowd is the stream of workers who visit one station: sweepers before
// dawn and at the midday and afternoon handovers, everyone at meal times,
// riders and drivers through the night, more of them when it is very hot
// or very cold. Each hour's visits are drawn from the seed, the station
// and the hour alone, so the door terminal and the AC of a station agree
// on who came and when without talking to each other, and a run is the
// same whatever order devices step in.
type crowd struct {
	seed     uint64
	climate  climate
	enrolled int      // workers on the station's allow-list; higher indexes are strangers
	scale    float64  // a multiplier on every hour's rate; 1 normally
	tokens   []string // tokens the platform issued to the first workers, if any

	// A small cache: a device asks about the same few hours again and again.
	cacheHour [crowdCache]int64
	cache     [crowdCache][]visit
	cacheNext int
}

// visit is one worker coming to the station.
type visit struct {
	at     time.Time     // presents a credential at the door
	stay   time.Duration // then rests inside this long
	worker int           // enrolled when below crowd.enrolled
	method string        // face, nfc or qr
}

// leaves is when the worker walks out again.
func (v visit) leaves() time.Time { return v.at.Add(v.stay) }

// Crowd figures.
const (
	minEnrolled     = 20
	maxEnrolled     = 60
	strangerShare   = 0.05 // visitors not on the allow-list: new hires, the lost
	minStay         = 5 * time.Minute
	maxStay         = 2 * time.Hour
	meanStayMinutes = 25.0
	hotFromC        = 30.0 // above this, each degree brings 8 % more visitors
	coldBelowC      = 5.0  // below this, each degree brings 6 % more
	maxCatchUpHours = 48   // a device dark for longer does not replay every visit
	crowdCache      = 4    // hours kept drawn: a stay spans up to three
)

// newCrowd returns the crowd of a station.
func newCrowd(seed int64, station string, cl climate, tokens []string) *crowd {
	s := mix(uint64(seed)) ^ hashString("crowd/"+station)
	c := &crowd{
		seed:     s,
		climate:  cl,
		enrolled: minEnrolled + int(mix(s)%uint64(maxEnrolled-minEnrolled+1)),
		scale:    1,
		tokens:   tokens,
	}
	if len(tokens) > 0 {
		c.enrolled = len(tokens)
	}
	for i := range c.cacheHour {
		c.cacheHour[i] = math.MinInt64
	}
	return c
}

// ratePerHour is how many workers arrive in an hour of the day at a given
// outdoor temperature.
func ratePerHour(hour float64, outdoorC float64) float64 {
	var r float64
	switch {
	case hour >= 4 && hour < 6: // sweepers start
		r = 5
	case hour >= 6 && hour < 7:
		r = 2.5
	case hour >= 7 && hour < 11:
		r = 1.8
	case hour >= 11 && hour < 13: // lunch and the midday handover
		r = 5
	case hour >= 13 && hour < 16:
		r = 2
	case hour >= 16 && hour < 18: // afternoon handover
		r = 4
	case hour >= 18 && hour < 19.5: // supper
		r = 3.5
	case hour >= 19.5 && hour < 22:
		r = 1.5
	default: // riders and drivers through the night
		r = 0.6
	}
	switch {
	case outdoorC > hotFromC:
		r *= 1 + 0.08*(outdoorC-hotFromC)
	case outdoorC < coldBelowC:
		r *= 1 + 0.06*(coldBelowC-outdoorC)
	}
	return r
}

// hour returns the visits that arrive in the hour numbered h since the
// Unix epoch, in order of arrival.
func (c *crowd) hour(h int64) []visit {
	for i, ch := range c.cacheHour {
		if ch == h {
			return c.cache[i]
		}
	}

	start := time.Unix(h*3600, 0)
	mid := start.Add(30 * time.Minute)
	rate := c.scale * ratePerHour(hourOf(mid.In(c.climate.loc)), c.climate.outdoorC(mid))
	rng := rand.New(rand.NewPCG(c.seed, mix(uint64(h))))
	n := poisson(rng, rate)
	out := make([]visit, 0, n)
	for range n {
		v := visit{at: start.Add(time.Duration(rng.Int64N(int64(time.Hour))))}
		stay := meanStayMinutes * math.Exp(0.6*rng.NormFloat64()-0.18)
		v.stay = clampDuration(time.Duration(stay*float64(time.Minute)), minStay, maxStay)
		if rng.Float64() < strangerShare {
			v.worker = c.enrolled + rng.IntN(1000)
		} else {
			v.worker = rng.IntN(c.enrolled)
		}
		v.method = c.method(v.worker)
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b visit) int { return a.at.Compare(b.at) })

	c.cacheHour[c.cacheNext], c.cache[c.cacheNext] = h, out
	c.cacheNext = (c.cacheNext + 1) % crowdCache
	return out
}

// arrivals returns the visits that arrive in (from, to], oldest first; a
// span longer than maxCatchUpHours keeps only its end.
func (c *crowd) arrivals(from, to time.Time) []visit {
	if !to.After(from) {
		return nil
	}
	if to.Sub(from) > maxCatchUpHours*time.Hour {
		from = to.Add(-maxCatchUpHours * time.Hour)
	}
	var out []visit
	for h := hourIndex(from); h <= hourIndex(to); h++ {
		for _, v := range c.hour(h) {
			if v.at.After(from) && !v.at.After(to) {
				out = append(out, v)
			}
		}
	}
	return out
}

// next returns the first arrival after t, looking a day ahead; zero if
// nobody comes in that day.
func (c *crowd) next(t time.Time) time.Time {
	for h := hourIndex(t); h <= hourIndex(t)+24; h++ {
		for _, v := range c.hour(h) {
			if v.at.After(t) {
				return v.at
			}
		}
	}
	return time.Time{}
}

// inside counts the visitors resting in the station at t.
func (c *crowd) inside(t time.Time) int {
	n := 0
	for h := hourIndex(t.Add(-maxStay)); h <= hourIndex(t); h++ {
		for _, v := range c.hour(h) {
			if !v.at.After(t) && v.leaves().After(t) {
				n++
			}
		}
	}
	return n
}

// doorOpenings counts arrivals and departures in (from, to]: each one
// opens the door once.
func (c *crowd) doorOpenings(from, to time.Time) int {
	n := 0
	for h := hourIndex(from.Add(-maxStay)); h <= hourIndex(to); h++ {
		for _, v := range c.hour(h) {
			if v.at.After(from) && !v.at.After(to) {
				n++
			}
			if l := v.leaves(); l.After(from) && !l.After(to) {
				n++
			}
		}
	}
	return n
}

// method is how a worker identifies: a worker keeps to one, mostly face,
// then card, then QR.
func (c *crowd) method(worker int) string {
	switch u := unit(c.seed ^ mix(uint64(worker)+7)); {
	case u < 0.5:
		return schemas.MethodFace
	case u < 0.8:
		return schemas.MethodNFC
	}
	return schemas.MethodQR
}

// token is the opaque credential token a worker's face, card or QR code
// turns into at the terminal: the same worker always gives the same one,
// the one the platform issued when it is known.
func (c *crowd) token(worker int) string {
	if worker < len(c.tokens) {
		return c.tokens[worker]
	}
	prefix := map[string]string{schemas.MethodFace: "ft", schemas.MethodNFC: "nc",
		schemas.MethodQR: "qr"}[c.method(worker)]
	return fmt.Sprintf("%s_%016x%016x", prefix, mix(c.seed^uint64(worker)), mix(c.seed+uint64(worker)))
}

// hourIndex numbers the hour t falls in since the Unix epoch.
func hourIndex(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return (s - 3599) / 3600
	}
	return s / 3600
}

// poisson draws a Poisson count of mean lambda (Knuth's method, fine for
// the small means here).
func poisson(rng *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	limit, p, n := math.Exp(-lambda), 1.0, 0
	for {
		p *= rng.Float64()
		if p <= limit {
			return n
		}
		n++
	}
}

func clampDuration(d, lo, hi time.Duration) time.Duration {
	return max(lo, min(hi, d))
}
