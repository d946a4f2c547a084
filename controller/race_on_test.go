//go:build race

package controller

// raceDetector is true when the tests run with the race detector, which
// slows the controller: tests on a fast simulated clock slow the clock.
const raceDetector = true
