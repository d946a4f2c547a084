// Package schemas is the waystation wire contract, version 1: topic names,
// message types, the JSON Schema files that device vendors validate against
// (SchemaFiles), and decoders that accept exactly what those files accept.
//
// README.md in this folder is the contract written out for device vendors.
// It imports nothing else of waystation; every other package builds on it.
package schemas
