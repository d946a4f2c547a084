//go:build race

package devices

// raceEnabled is true when the tests run under the race detector, which
// makes bbolt-heavy loops several times slower.
const raceEnabled = true
