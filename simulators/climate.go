package simulators

import (
	"math"
	"time"
)

// climate gives the outdoor weather at one station of Yingshang county
// (32.6 N, on the Huai plain): a seasonal mean, a day-night swing, and a
// county-wide weather anomaly that changes from day to day. Every device of
// a seed computes the same anomaly, so the devices of a station agree on the
// weather without talking to each other.
type climate struct {
	seed     int64
	loc      *time.Location
	offsetC  float64 // the station's own bias: paving, shade, a river nearby
	humidity float64 // the station's own humidity bias, percent points
}

// newClimate returns the climate of a station.
func newClimate(seed int64, loc *time.Location, station string) climate {
	h := hashString(station) ^ uint64(seed)
	return climate{
		seed:     seed,
		loc:      loc,
		offsetC:  unit(h)*1.2 - 0.6,
		humidity: unit(h+1)*6 - 3,
	}
}

// Seasonal figures: January days 5-8 °C and nights -3..0 °C, July days
// 32-36 °C and nights 25-28 °C. The daily mean follows a cosine over the
// year, coldest around 20 January.
const (
	yearMeanC      = 16.0
	yearSwingC     = 13.5 // half the difference between the July and January means
	daySwingC      = 4.0  // half the difference between afternoon and dawn
	coldestDay     = 20.0 // day of the year
	dawnHour       = 5.5  // coldest hour, local time
	afternoonHour  = 14.5 // warmest hour, local time
	anomalyRangeC  = 2.5  // a day may run this much warmer or colder than usual
	daysPerYear    = 365.25
	heatDaysFromC  = 22.0 // daily mean above which stations cool
	coldDaysBelowC = 12.0 // daily mean below which stations heat
)

// dailyMeanC is the usual daily mean at t, before the weather anomaly.
func (c climate) dailyMeanC(t time.Time) float64 {
	local := t.In(c.loc)
	day := float64(local.YearDay()) + hourOf(local)/24
	return yearMeanC - yearSwingC*math.Cos(2*math.Pi*(day-coldestDay)/daysPerYear)
}

// outdoorC is the outdoor air temperature at t, °C.
func (c climate) outdoorC(t time.Time) float64 {
	local := t.In(c.loc)
	return c.dailyMeanC(t) + daySwingC*dayShape(hourOf(local)) + c.anomalyC(local) + c.offsetC
}

// outdoorHumidityPct is the outdoor relative humidity at t: damp all year,
// wettest in the plum-rain and summer months, driest in the afternoon.
func (c climate) outdoorHumidityPct(t time.Time) float64 {
	local := t.In(c.loc)
	day := float64(local.YearDay())
	season := -math.Cos(2 * math.Pi * (day - coldestDay) / daysPerYear) // -1 winter, +1 summer
	rh := 72 + 8*season - 12*dayShape(hourOf(local)) + c.humidity
	return clamp(rh, 30, 98)
}

// anomalyC is the county-wide weather anomaly: one random value per local
// day, drawn from the seed, joined linearly so the temperature never jumps.
func (c climate) anomalyC(local time.Time) float64 {
	y, m, d := local.Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
	f := hourOf(local) / 24
	at := func(day int64) float64 {
		return (unit(uint64(c.seed)^mix(uint64(day)))*2 - 1) * anomalyRangeC
	}
	return at(day)*(1-f) + at(day+1)*f
}

// dayShape is the day-night swing, -1 at dawn and +1 in mid-afternoon: the
// air warms quickly after sunrise and cools slowly through the night.
func dayShape(hour float64) float64 {
	if hour >= dawnHour && hour <= afternoonHour {
		return -math.Cos(math.Pi * (hour - dawnHour) / (afternoonHour - dawnHour))
	}
	since := math.Mod(hour-afternoonHour+24, 24)
	return math.Cos(math.Pi * since / (24 - afternoonHour + dawnHour))
}

// hourOf is the local hour of the day as a fraction.
func hourOf(local time.Time) float64 {
	return float64(local.Hour()) + float64(local.Minute())/60 + float64(local.Second())/3600
}

// mix is the splitmix64 finaliser: a cheap, well-spread hash of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// unit maps x to [0, 1).
func unit(x uint64) float64 {
	return float64(mix(x)>>11) / (1 << 53)
}

// hashString is FNV-1a, 64 bits.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func clamp(v, lo, hi float64) float64 {
	return math.Max(lo, math.Min(hi, v))
}

// round1 rounds to one decimal, the resolution of the simulated sensors.
func round1(v float64) float64 {
	return math.Round(v*10) / 10
}

// relax moves v toward target as a first-order system with time constant
// tau would over dt; it stays stable for any dt.
func relax(v, target float64, dt, tau time.Duration) float64 {
	if tau <= 0 {
		return target
	}
	return target + (v-target)*math.Exp(-dt.Seconds()/tau.Seconds())
}
