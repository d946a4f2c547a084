// Package controller makes the platform's decisions: it ingests what devices
// publish, keeps their twins, and serves the HTTP API.
//
// It reaches the MQTT broker only through Bus, so it runs the same against
// the embedded broker's in-process client and against an external cluster.
package controller
