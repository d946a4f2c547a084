// Package devices keeps the registry of stations and devices and the twin of
// every device: its last reported state, presence and firmware.
//
// Registry and Twins share one bbolt file, opened with OpenDB; each owns its
// own buckets, so other packages may keep theirs in the same file.
//
// Caveats: registry writes are durable when the call returns; twins live in
// memory and are written in batches (Twins.Run), so a crash loses at most
// the last flush interval of reported state, which the devices report again.
package devices
