//go:build !race

// The race detector changes every frame's size, and with it which stacks
// the garbage collector shrinks: make test runs this file in a run of its
// own without -race.

package broker

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// A device's connection goroutine grows its stack through mochi's frames
// for a publish. Parked in Read between packets, it must still use a
// quarter of that stack, or every garbage collection halves it and the
// device's next publish copies it back up (see trackedConn.Read). Once
// the stacks have settled, a round of publishes and collections must leave
// them where they were.
func TestPublishStacksSettle(t *testing.T) {
	const n = 200
	creds := testCreds{}
	for i := range n {
		creds[fmt.Sprint("dev-", i)] = struct{ station, secret string }{"st-mem", "secret"}
	}
	b := start(t, func(o *Options) { o.Credentials = creds }).b
	var got atomic.Int64
	if err := b.Bus().Subscribe("waystation/v1/+/+/telemetry", 0,
		func(string, []byte, bool) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}

	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range n {
		conns = append(conns, idleLogin(t, b.TCPAddr(), fmt.Sprint("dev-", i)))
	}
	// round has every device publish once, waits for all of it, and
	// returns the stacks in use after that and after four collections.
	round := func() (published, collected uint64) {
		want := got.Load() + n
		for i, c := range conns {
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish},
				TopicName: fmt.Sprintf("waystation/v1/st-mem/dev-%d/telemetry", i),
				Payload:   []byte(`{"ts":1,"seq":1}`)}
			var buf bytes.Buffer
			if err := pk.PublishEncode(&buf); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(buf.Bytes()); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(waitFor)
		for got.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d publishes arrived", got.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // every reader back in Read
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		published = m.StackInuse
		for range 4 {
			runtime.GC()
		}
		runtime.ReadMemStats(&m)
		return published, m.StackInuse
	}
	round()
	round()
	published, collected := round()
	regrown := (float64(published) - float64(collected)) / n
	t.Logf("stacks after a round of publishes %d KiB, after collections %d KiB "+
		"(%.0f B a connection)", published>>10, collected>>10, regrown)
	if regrown > 4<<10 {
		t.Errorf("each round of publishes grows the stacks that collections shrink, "+
			"by %.0f B a connection", regrown)
	}
}
