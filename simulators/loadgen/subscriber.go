package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Subscriber is a plain MQTT 3.1.1 subscriber on a raw socket: it reads
// publishes as fast as the socket gives them, acknowledges QoS 1 ones, and
// records how long each took from the timestamp in its payload. A client
// library's dispatch would cap the rate it sees; this keeps the broker
// the thing measured.
type Subscriber struct {
	conn net.Conn
	now  func() time.Time

	count atomic.Int64
	last  atomic.Int64 // UnixNano of the last publish read
	lat   Latencies

	done chan struct{}
	err  error // set before done closes
}

// Subscribe connects to addr (loopback only) as user and subscribes to
// filter at qos. now is the clock the publishers read; nil is time.Now.
func Subscribe(addr, clientID, user, pass, filter string, qos byte,
	now func() time.Time) (*Subscriber, error) {
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	s := &Subscriber{conn: conn, now: now, done: make(chan struct{})}
	r := bufio.NewReaderSize(conn, 256<<10)

	cp := packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: clientID,
		Clean: true, Keepalive: 300}
	if user != "" {
		cp.UsernameFlag, cp.Username = true, []byte(user)
		cp.PasswordFlag, cp.Password = true, []byte(pass)
	}
	var buf bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4, Connect: cp}
	if err := pk.ConnectEncode(&buf); err != nil {
		_ = conn.Close()
		return nil, err
	}
	sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 4, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: filter, Qos: qos}}}
	if err := sub.SubscribeEncode(&buf); err != nil {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(buf.Bytes()); err != nil {
		_ = conn.Close()
		return nil, err
	}
	for _, want := range []byte{packets.Connack, packets.Suback} {
		typ, body, err := readPacket(r)
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("subscribe: %w", err)
		}
		if typ>>4 != want {
			_ = conn.Close()
			return nil, fmt.Errorf("subscribe: packet type %d, want %d", typ>>4, want)
		}
		if want == packets.Connack && (len(body) < 2 || body[1] != 0) {
			_ = conn.Close()
			return nil, fmt.Errorf("subscribe: connection refused (% x)", body)
		}
		if want == packets.Suback && (len(body) < 3 || body[2] > 2) {
			_ = conn.Close()
			return nil, fmt.Errorf("subscribe: %s refused (% x)", filter, body)
		}
	}
	_ = conn.SetDeadline(time.Time{})
	go s.read(r)
	return s, nil
}

// readPacket reads one packet: its first byte and its body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
		mult *= 128
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return first, body, err
}

// read counts publishes until the connection closes.
func (s *Subscriber) read(r *bufio.Reader) {
	defer close(s.done)
	w := bufio.NewWriterSize(s.conn, 4096)
	for {
		first, body, err := readPacket(r)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				s.err = err
			}
			return
		}
		if first>>4 != packets.Publish || len(body) < 2 {
			continue
		}
		qos := (first >> 1) & 3
		off := 2 + (int(body[0])<<8 | int(body[1]))
		if qos > 0 && off+2 <= len(body) {
			// PUBACK with the packet id; flushed when nothing more waits.
			_, _ = w.Write([]byte{packets.Puback << 4, 2, body[off], body[off+1]})
			off += 2
		}
		if off <= len(body) {
			if ts := payloadTS(body[off:]); ts > 0 {
				s.lat.Add(s.now().Sub(time.UnixMilli(ts)))
			}
		}
		s.count.Add(1)
		s.last.Store(time.Now().UnixNano())
		if r.Buffered() == 0 && w.Buffered() > 0 {
			if err := w.Flush(); err != nil {
				s.err = err
				return
			}
		}
	}
}

// payloadTS finds "ts": in a payload and reads the integer after it.
func payloadTS(p []byte) int64 {
	i := bytes.Index(p, []byte(`"ts":`))
	if i < 0 {
		return 0
	}
	var v int64
	for _, c := range p[i+5:] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int64(c-'0')
	}
	return v
}

// Count returns how many publishes were read.
func (s *Subscriber) Count() int64 { return s.count.Load() }

// Last returns when the last publish was read (zero if none).
func (s *Subscriber) Last() time.Time {
	n := s.last.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Latencies returns the latencies recorded since the last Reset.
func (s *Subscriber) Latencies() *Latencies { return &s.lat }

// Close closes the connection and waits for the reader.
func (s *Subscriber) Close() error {
	_ = s.conn.Close()
	<-s.done
	return s.err
}

// WaitQuiet waits until count reaches want, or nothing more arrives for
// quiet, or ctx ends; it returns the count.
func WaitQuiet(ctx context.Context, count func() int64, want int64, quiet time.Duration) int64 {
	last, lastChange := count(), time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		n := count()
		if n >= want {
			return n
		}
		if n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > quiet {
			return n
		}
		select {
		case <-ctx.Done():
			return n
		case <-tick.C:
		}
	}
}

// Latencies collects durations, safe for concurrent use, up to a bound.
type Latencies struct {
	mu  sync.Mutex
	d   []time.Duration
	cut int64 // durations left out past the bound
}

const maxSamples = 4 << 20

// Add records one duration.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	if len(l.d) < maxSamples {
		l.d = append(l.d, d)
	} else {
		l.cut++
	}
	l.mu.Unlock()
}

// Reset forgets every duration.
func (l *Latencies) Reset() {
	l.mu.Lock()
	l.d, l.cut = l.d[:0], 0
	l.mu.Unlock()
}

// Percentiles returns the given quantiles (0..1) of what was recorded, and
// how many durations there are.
func (l *Latencies) Percentiles(q ...float64) ([]time.Duration, int) {
	l.mu.Lock()
	d := append([]time.Duration(nil), l.d...)
	l.mu.Unlock()
	return quantiles(d, q), len(d)
}
