package controller

import "time"

// OpenAt reports whether a station with opening hours hours ("24h" or
// "HH:MM-HH:MM", possibly across midnight) is open at t, read in loc: the
// same rule door access and the nearest-station search apply.
func OpenAt(hours string, t time.Time, loc *time.Location) bool {
	return openAt(hours, t, loc)
}
