// Package simulators runs simulated station devices (door terminals, air
// conditioners, charger cabinets, AED cabinets) that know the platform only
// through MQTT and the v1 wire contract of package schemas.
//
// A Device logs in with its id and secret, announces itself with a retained
// online status naming a fresh connection id (its last will names the same
// id), publishes telemetry every interval and events as things happen, and
// answers commands on cmd/result. A Fleet runs many devices against one
// broker, for demos and load. Values follow the weather and working day of
// Yingshang county: the season and hour set the outdoor temperature, rooms
// warm and cool toward it, workers come and go at shift changes, batteries
// charge along a curve, AEDs self-test every night.
//
// # Commands
//
// A device carries out a command id at most once. A repeated id is not
// carried out again: the device sends its first answer again, so a
// platform that lost the answer and retries gets it. A command whose
// expires_at has passed by the device clock is dropped without an answer
// and without effect. Arguments:
//
//	ac.set         power (bool), mode, setpoint_c (16-32), fan (auto, low, mid, high); at least one
//	lock.unlock    seconds (1-600, default 5)
//	lock.mode      mode (normal, open, lockdown)
//	charger.slot   slot (1-based), on (bool)
//	device.reboot  none; the device answers, goes offline cleanly and boots again
//
// # Caveats
//
// The physics is first order and plausible rather than exact: one room per
// AC, no sun or wind, no heat waves beyond a daily random swing of ±2.5 °C.
// The sequence number counts every message a device sends and survives
// reconnects and reboots.
//
// # Time
//
// A Clock gives the devices their time of day and paces their telemetry,
// physics, self-tests, reboots and power cuts: NewClock(start, 60) runs an
// hour a minute. Network timing (connects, publish timeouts, backoff)
// stays on the wall clock. At a speed where a telemetry period would be
// shorter than 50 ms of wall time, the period stretches and the status
// announces the longer interval. A device given only a Now function (a
// frozen clock in tests) runs its periods at wall speed.
package simulators
