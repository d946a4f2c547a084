package broker

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// idleCost is what one idle device connection costs the process.
type idleCost struct {
	heapBytes  float64 // live heap per connection, after GC
	stackBytes float64 // goroutine stacks per connection
	rssBytes   float64 // resident set per connection; 0 if unknown
}

// measureIdle connects n devices that log in and then stay silent, and
// returns the cost per connection. The client side is a bare socket each,
// so nearly all of the cost is the broker's.
func measureIdle(tb testing.TB, n, writesPending int) idleCost {
	tb.Helper()
	creds := testCreds{}
	for i := range n {
		creds[fmt.Sprint("dev-", i)] = struct{ station, secret string }{"st-mem", "secret"}
	}
	b, err := New(Options{TCPAddr: "127.0.0.1:0", Credentials: creds,
		ClientWritesPending: writesPending})
	if err != nil {
		tb.Fatal(err)
	}
	if err := b.Start(); err != nil {
		tb.Fatal(err)
	}
	defer b.Close()

	before, rssBefore := memNow()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range n {
		conns = append(conns, idleLogin(tb, b.TCPAddr(), fmt.Sprint("dev-", i)))
	}
	deadline := time.Now().Add(waitFor)
	for atomic.LoadInt64(&b.srv.Info.ClientsConnected) < int64(n) {
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d clients connected", b.srv.Info.ClientsConnected, n)
		}
		time.Sleep(time.Millisecond)
	}
	after, rssAfter := memNow()

	cost := idleCost{
		heapBytes:  float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n),
		stackBytes: float64(int64(after.StackInuse)-int64(before.StackInuse)) / float64(n),
	}
	if rssBefore > 0 && rssAfter > 0 {
		cost.rssBytes = float64(rssAfter-rssBefore) / float64(n)
	}
	return cost
}

// idleLogin opens a socket, logs in as device id and leaves it idle.
func idleLogin(tb testing.TB, addr, id string) net.Conn {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: id,
			Clean: true, Keepalive: 300, UsernameFlag: true, Username: []byte(id),
			PasswordFlag: true, Password: []byte("secret")},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		tb.Fatal(err)
	}
	var ack [4]byte
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadFull(c, ack[:]); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		tb.Fatalf("login %s: connack % x, err %v", id, ack, err)
	}
	return c
}

// memNow returns the memory statistics after a GC and the resident set
// size in bytes (0 where /proc is not available).
func memNow() (runtime.MemStats, int64) {
	for range 6 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)

	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return m, 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(rest, "kB")), 10, 64)
			if err == nil {
				return m, kb << 10
			}
		}
	}
	return m, 0
}

// An idle device must stay cheap: with mochi's default write queue of
// 8192 packets each connection would hold a 64 KiB channel.
func TestIdleConnectionMemory(t *testing.T) {
	const n = 300
	small := measureIdle(t, n, 0)
	t.Logf("per idle connection: heap %.0f B, stacks %.0f B", small.heapBytes, small.stackBytes)
	if small.heapBytes > 16<<10 {
		t.Errorf("heap %.0f B per idle connection, want under 16 KiB", small.heapBytes)
	}

	big := measureIdle(t, n, 8192)
	if big.heapBytes-small.heapBytes < 32<<10 {
		t.Errorf("an 8192-packet write queue costs only %.0f B more per connection; "+
			"the measurement does not see the queue", big.heapBytes-small.heapBytes)
	}
}

// BenchmarkIdleConnections reports the memory of 2,000 idle device
// connections, per connection. Run with -benchtime=1x.
func BenchmarkIdleConnections(b *testing.B) {
	const n = 2000
	var cost idleCost
	for range b.N {
		cost = measureIdle(b, n, 0)
	}
	b.ReportMetric(cost.heapBytes, "heapB/conn")
	b.ReportMetric(cost.stackBytes, "stackB/conn")
	b.ReportMetric(cost.heapBytes+cost.stackBytes, "B/conn")
	if cost.rssBytes > 0 {
		b.ReportMetric(cost.rssBytes, "rssB/conn")
	}
}
