// Package schemas is the waystation wire contract, version 1: topic names,
// message types, and decoders that accept exactly what the JSON Schema files
// in this folder accept.
//
// It imports nothing else of waystation; every other package builds on it.
package schemas
