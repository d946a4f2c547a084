// Package broker is the embedded MQTT broker (mochi-mqtt) with device
// authentication and the per-device topic ACL of the v1 wire contract.
//
// A device logs in with its device id as username and client id and its
// secret as password. It may publish only under its own
// waystation/v1/{station}/{device}/ (status, telemetry, event, cmd/result,
// access/req) and subscribe only to its own cmd, access/res and access/list
// topics. The controller has its own identity and may use anything under
// waystation/, or it talks to the broker in-process through a Bus.
//
// # Caveats
//
// These deliberately differ from a stock MQTT broker:
//
//   - A refused publish from an MQTT 3.1.1 client is acknowledged and dropped
//     (3.1.1 has no negative acknowledgement, and closing the connection would
//     fire the device's will and make it flap); MQTT 5 clients get reason
//     code 0x87 (not authorized) on a topic they do not own.
//   - A device may publish retained on its status only, and nobody, the
//     controller included, on a cmd topic: a retained command or event
//     would replay on every reconnect or restart.
//   - When a device reconnects while its old connection still lingers, the
//     old connection's will is dropped instead of published: it would say
//     "offline" after the new connection said "online". Wills are dropped
//     too when the broker shuts down: the devices did not fail.
//   - Nothing is queued for a disconnected device, even with a persistent
//     session: the ACL knows only connected clients, and a command the
//     device missed is the controller's to retry or let expire.
//   - Retained messages never expire by age, and the store keeps retained
//     messages and sessions but not in-flight QoS messages, so a QoS 1
//     message costs no disk write; commands are retried by the controller.
//   - MQTT 5 topic aliases are not offered.
package broker
