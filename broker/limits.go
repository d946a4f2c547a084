package broker

import (
	"errors"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Defaults of the per-device publish rate limit (Options.MaxMsgsPerSecond
// and Options.MsgBurst). A device reports every few seconds and sends an
// event, an access request or a command result now and then; a reconnect
// adds a status. Fifty a second with a burst of five hundred is far above
// any of that and still stops one device from taking the ingest queues.
const (
	DefaultMaxMsgsPerSecond = 50
	DefaultMsgBurst         = 500
)

// bucket is a token bucket: rate tokens a second up to burst, one per
// publish. Once empty, the device's connection is cut and every publish
// still buffered on it is dropped.
type bucket struct {
	mu     sync.Mutex // guards the rest; publishes of one client are serial, so it is uncontended
	tokens float64
	last   time.Time
	cut    bool // the connection was cut for its rate
}

func newBucket(burst int, now time.Time) *bucket {
	return &bucket{tokens: float64(burst), last: now}
}

// take spends a token. first reports whether this call is the one that
// found the bucket empty (the connection is to be cut now); ok is false for
// that call and every later one.
func (b *bucket) take(rate float64, burst int, now time.Time) (ok, first bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		return false, false
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.tokens+d.Seconds()*rate, float64(burst))
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, false
	}
	b.cut = true
	return false, true
}

// rateLimited reports whether a publish of cl goes over its rate; the
// first one that does cuts the connection and is counted. Only devices are
// limited: the controller and the in-process bus are not.
func (h *authHook) rateLimited(cl *mqtt.Client, e *peerEntry) bool {
	if h.rate <= 0 || e == nil || e.controller || e.bucket == nil {
		return false
	}
	ok, first := e.bucket.take(h.rate, h.burst, h.now())
	if ok {
		return false
	}
	if first {
		h.refuse(cl, &e.peer, actionPublish, reasonRate)
		h.cut(cl, packets.ErrMessageRateTooHigh)
	}
	return true
}

// cut closes a client's socket for misbehaving. Closing the socket rather
// than stopping the client (mochi's DisconnectClient) makes mochi's read
// loop fail as for a lost connection, so the device's will is published:
// it is offline, and the platform must see it so. An MQTT 5 client is told
// why first.
func (h *authHook) cut(cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion == 5 {
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Disconnect},
			ReasonCode:  code.Code,
			Properties:  packets.Properties{ReasonString: code.Reason},
		})
	}
	if cl.Net.Conn != nil {
		_ = cl.Net.Conn.Close()
	}
}

// malformedPublish reports whether a connection ended on a PUBLISH whose
// topic mochi could not accept: invalid UTF-8, a NUL, or a wildcard.
func malformedPublish(err error) bool {
	return errors.Is(err, packets.ErrMalformedTopic) ||
		errors.Is(err, packets.ErrMalformedInvalidUTF8) ||
		errors.Is(err, packets.ErrProtocolViolationSurplusWildcard)
}
