// Package simulators runs simulated station devices (door terminals, air
// conditioners, charger cabinets, AED cabinets) that know the platform only
// through MQTT and the v1 wire contract of package schemas.
//
// A Device logs in with its id and secret, announces itself with a retained
// online status naming a fresh connection id (its last will names the same
// id), publishes telemetry every interval and events as things happen, and
// answers commands on cmd/result. A Fleet runs many devices against one
// broker, for demos and load, and can play a Scenario on them.
//
// # The hardware
//
// Values follow the weather and working day of Yingshang county. The season
// and hour set the outdoor temperature (July afternoons 32-36 °C, January
// nights below zero), with a county-wide anomaly from day to day.
//
// Workers come to each station at the shift changes (sweepers before
// dawn, at midday and in the afternoon), at meal times, and a few through
// the night; more of them when it is very hot or very cold. Every device of
// a station draws the same crowd from the seed, so the door terminal and
// the AC agree on who came without talking.
//
//   - ac: a room with a heat capacity and an insulation, warmed by the air
//     outside, the sun, its equipment, the people resting in it and the
//     outdoor air let in at each door opening; the unit's inverter moves up
//     to its capacity (which falls in extreme weather) to hold the setpoint,
//     and draws power for it at an efficiency that falls with the lift. A
//     fault code stops the compressor; in a heat wave a unit working hard
//     may trip (P1) and recover by itself.
//   - lock: each visitor's credential (an opaque token per worker) goes to
//     the platform as an access request; the answer opens the door, or, when
//     none comes in time, the terminal's cache of past answers and its
//     allow-list decide (the platform's access/list when it sent one), and
//     the event says which. Visitors rest and leave;
//     now and then a door is propped open in the heat (door_held), forced
//     (door_forced), or the bolt jams for a while; the backup battery drains.
//   - charger: batteries arrive in empty bays, charge along a constant
//     current then tapering curve, slowed by heat and cold, and are picked
//     up; the cabinet cuts a bay at about 60 °C. A cell in thermal runaway
//     heats itself past the cut until it smokes; without mains nothing
//     charges.
//   - aed: a self-test every night between 02:00 and 04:00 that fails on an
//     internal fault, a flat battery or pads past their date; the cabinet
//     follows the weather within what its heater and vents allow.
//
// A Scenario scripts what goes wrong and when (see Scenarios for the ones
// shipped); DeviceOptions.Break makes a device break the contract on
// purpose, for package probe, the conformance probe, to catch.
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
//	device.ping    none; the device answers and sends its telemetry at once
//
// # Time
//
// A Clock gives the devices their time of day and paces their telemetry,
// physics, self-tests, reboots and power cuts: NewClock(start, 60) runs an
// hour a minute. Network timing (connects, publish timeouts, backoff, the
// wait for an access answer) stays on the wall clock, though a terminal
// never waits more than 10 simulated seconds for an answer. At a speed
// where a telemetry period would be shorter than 50 ms of wall time, the
// period stretches and the status announces the longer interval. A device
// given only a Now function (a frozen clock in tests) runs its periods at
// wall speed.
//
// The models step on a fixed grid of 5 simulated seconds, and each draws
// from its own stream seeded by the seed and the device id: the same seed
// and start give the same physics whenever the reports happen to fire.
// What arrives over the network (commands, access answers) and when it
// arrives is the one thing a seed cannot fix.
//
// # Caveats
//
// The physics is lumped and plausible rather than exact: one room per AC,
// one temperature per charger bay, no wind, no rain. A device's reported
// state is that of the last grid step, up to 5 simulated seconds old. The
// sequence number counts every message a device sends and survives
// reconnects and reboots.
package simulators
