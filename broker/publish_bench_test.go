package broker

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/waystation/waystation/schemas"
)

// BenchmarkPublish is the broker's cost of one device publish: mochi
// reading and routing it, the hooks (login identity, ACL, rate limit) and
// the dispatch to the controller's Bus subscriptions (ingest's five
// channel filters, one of them counting). Devices are raw sockets on
// loopback that write their publishes 64 to a system call, so the process
// CPU (getrusage, reported as cpu-ns/msg) is nearly all the broker's.
// allocs/op and B/op are per message.
//
//	go test -run '^$' -bench Publish -benchmem -benchtime 200000x ./broker
func BenchmarkPublish(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos=%d", qos), func(b *testing.B) { benchPublish(b, qos) })
	}
}

const (
	benchDevices = 50 // device connections publishing at once
	benchBatch   = 64 // publishes a device writes in one system call
)

func benchPublish(b *testing.B, qos byte) {
	creds := testCreds{}
	for i := range benchDevices {
		creds[fmt.Sprint("dev-", i)] = struct{ station, secret string }{
			fmt.Sprint("st-", i/4), "secret"}
	}
	// The limit stays on, as in production, but far above the load.
	br, err := New(Options{TCPAddr: "127.0.0.1:0", Credentials: creds,
		MaxMsgsPerSecond: 1e9, MsgBurst: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	defer br.Close()

	var got atomic.Int64
	done := make(chan struct{})
	want := int64(b.N)
	bus := br.Bus()
	defer bus.Close()
	for _, ch := range schemas.Channels {
		if !ch.FromDevice() {
			continue
		}
		h := func(string, []byte, bool) {}
		if ch == schemas.ChannelTelemetry {
			h = func(string, []byte, bool) {
				if got.Add(1) == want {
					close(done)
				}
			}
		}
		if err := bus.Subscribe(schemas.DeviceFilter(ch), 1, h); err != nil {
			b.Fatal(err)
		}
	}

	// Each device's publishes, encoded once: the same telemetry payload
	// an air conditioner sends, packet ids counting up for QoS 1.
	payload := []byte(`{"ts":1767225600000,"schema":"ac.telemetry/1","power":true,` +
		`"mode":"cool","setpoint_c":22.5,"room_c":24.1,"outdoor_c":31.2,"humidity_pct":55,` +
		`"power_w":1430,"energy_wh":123456,"filter_hours":812,"fault":null}`)
	conns := make([]net.Conn, benchDevices)
	batches := make([][]byte, benchDevices)
	for i := range benchDevices {
		id := fmt.Sprint("dev-", i)
		conns[i] = idleLogin(b, br.TCPAddr(), id)
		defer conns[i].Close()
		topic := schemas.DeviceTopic(creds[id].station, id, schemas.ChannelTelemetry)
		var buf bytes.Buffer
		for j := range benchBatch {
			pk := packets.Packet{
				FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
				TopicName:   topic, Payload: payload, PacketID: uint16(j + 1),
			}
			if err := pk.PublishEncode(&buf); err != nil {
				b.Fatal(err)
			}
		}
		batches[i] = buf.Bytes()
	}
	// PUBACKs are read and thrown away; a client that stops reading
	// would hold its connection's writes up.
	var readers sync.WaitGroup
	if qos > 0 {
		for _, c := range conns {
			readers.Add(1)
			go func() {
				defer readers.Done()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}

	// Every device writes its share, rounded up to whole batches; the
	// surplus over b.N is not waited for.
	per := (b.N + benchDevices - 1) / benchDevices
	per = (per + benchBatch - 1) / benchBatch
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	var writers sync.WaitGroup
	for i, c := range conns {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for range per {
				if _, err := c.Write(batches[i]); err != nil {
					return
				}
			}
		}()
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("%d of %d messages reached the bus", got.Load(), b.N)
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	writers.Wait()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
	for _, c := range conns {
		_ = c.Close()
	}
	readers.Wait()
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
