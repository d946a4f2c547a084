package controller

import "time"

// openAt reports whether a station with opening hours hours ("24h", or
// "HH:MM-HH:MM" in local time, possibly across midnight) is open at t,
// read in loc. A window whose start equals its end is open all day. Hours
// the registry let through are always well formed; anything else counts
// as closed.
func openAt(hours string, t time.Time, loc *time.Location) bool {
	if hours == "24h" {
		return true
	}
	start, ok1 := clockMinutes(hours, 0)
	end, ok2 := clockMinutes(hours, 6)
	if !ok1 || !ok2 || len(hours) != 11 || hours[5] != '-' {
		return false
	}
	lt := t.In(loc)
	now := lt.Hour()*60 + lt.Minute()
	switch {
	case start == end:
		return true
	case start < end:
		return now >= start && now < end
	}
	return now >= start || now < end // across midnight
}

// clockMinutes reads "HH:MM" at s[i:] as minutes after midnight.
func clockMinutes(s string, i int) (int, bool) {
	if len(s) < i+5 || s[i+2] != ':' {
		return 0, false
	}
	d := func(c byte) int { return int(c - '0') }
	for _, j := range []int{0, 1, 3, 4} {
		if s[i+j] < '0' || s[i+j] > '9' {
			return 0, false
		}
	}
	h, m := d(s[i])*10+d(s[i+1]), d(s[i+3])*10+d(s[i+4])
	if h > 23 || m > 59 {
		return 0, false
	}
	return h*60 + m, true
}
