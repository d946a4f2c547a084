// Package loadgen is the platform's load generator: many lightweight MQTT
// devices (paho clients) publishing telemetry at a set rate or as fast as
// they can, with the send time in every payload, and the means to measure
// what comes out the other side: a plain subscriber, the platform's
// /metrics, and a process's CPU and memory read from /proc.
//
// It is what `waystation loadgen` runs, against the platform and against
// Mosquitto with the same load, so the two can be put side by side. It
// dials loopback addresses only, and every run is bounded in devices and
// time.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/waystation/waystation/schemas"
)

// Limits of one run.
const (
	MaxDevices  = 20000
	MaxDuration = 5 * time.Minute
)

// Errors of the package.
var (
	ErrNotLoopback = errors.New("the load generator dials loopback addresses only")
	ErrLimits      = errors.New("load beyond the generator's limits")
)

// Device is one simulated device: an air conditioner of a station. Secret
// empty logs in without a password (a broker that lets anyone in).
type Device struct {
	Station, ID, Secret string
}

// Devices returns n devices named lg-NNNNN, four to a station ls-NNNN.
func Devices(n int) []Device {
	out := make([]Device, n)
	for i := range out {
		out[i] = Device{Station: fmt.Sprintf("ls-%04d", i/4), ID: fmt.Sprintf("lg-%05d", i)}
	}
	return out
}

// Options configure a Generator.
type Options struct {
	Addr    string // the broker, host:port on a loopback address
	Devices []Device
	// ConnectConcurrency is how many devices connect at once; default 200.
	ConnectConcurrency int
	// Window is how many QoS 1 publishes of one device may await their
	// PUBACK; default 16.
	Window int
	// Now is the clock whose reading goes into the payloads; default
	// time.Now. The receiving side must read the same clock.
	Now func() time.Time
}

// Generator holds the devices' connections.
type Generator struct {
	o       Options
	clients []mqtt.Client
	topics  []string
	seq     atomic.Uint64
}

// CheckLoopback fails unless addr is host:port with a loopback host.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("broker %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("broker %q: %w", addr, ErrNotLoopback)
	}
	return nil
}

// New checks o; nothing connects until Connect.
func New(o Options) (*Generator, error) {
	if err := CheckLoopback(o.Addr); err != nil {
		return nil, err
	}
	if len(o.Devices) == 0 || len(o.Devices) > MaxDevices {
		return nil, fmt.Errorf("%d devices: %w (1 to %d)", len(o.Devices), ErrLimits, MaxDevices)
	}
	if o.ConnectConcurrency <= 0 {
		o.ConnectConcurrency = 200
	}
	if o.Window <= 0 {
		o.Window = 16
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &Generator{o: o}
	for _, d := range o.Devices {
		g.topics = append(g.topics, schemas.DeviceTopic(d.Station, d.ID, schemas.ChannelTelemetry))
	}
	return g, nil
}

// ConnectStats say how connecting went.
type ConnectStats struct {
	Connected int
	Failed    int
	Took      time.Duration
	FirstErr  error
}

// Connect connects every device, ConnectConcurrency at a time, and returns
// how long it took. Devices that fail are left out of the load.
func (g *Generator) Connect(ctx context.Context) ConnectStats {
	start := time.Now()
	g.clients = make([]mqtt.Client, len(g.o.Devices))
	sem := make(chan struct{}, g.o.ConnectConcurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var st ConnectStats
	for i, d := range g.o.Devices {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialDevice(g.o.Addr, d)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				st.Failed++
				if st.FirstErr == nil {
					st.FirstErr = fmt.Errorf("device %s: %w", d.ID, err)
				}
				return
			}
			g.clients[i] = c
			st.Connected++
		}()
	}
	wg.Wait()
	st.Took = time.Since(start)
	return st
}

func dialDevice(addr string, d Device) (mqtt.Client, error) {
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(d.ID).
		SetUsername(d.ID).SetPassword(d.Secret).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(60 * time.Second).SetConnectTimeout(20 * time.Second).
		SetWriteTimeout(10 * time.Second).SetOrderMatters(false)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(30 * time.Second) {
		c.Disconnect(0)
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}

// Connected returns how many devices are connected now.
func (g *Generator) Connected() int {
	n := 0
	for _, c := range g.clients {
		if c != nil && c.IsConnectionOpen() {
			n++
		}
	}
	return n
}

// SendStats say what a Run sent.
type SendStats struct {
	Sent   int64         // publishes handed to the network (QoS 1: acknowledged)
	Failed int64         // publishes that failed or timed out
	Took   time.Duration // from the first publish to the last one done
}

// Rate is the messages sent a second.
func (s SendStats) Rate() float64 {
	if s.Took <= 0 {
		return 0
	}
	return float64(s.Sent) / s.Took.Seconds()
}

// Run publishes telemetry at qos from every connected device for d: at
// rate messages a second over all devices, each device in turn on its own
// schedule, or, with rate 0, each device as fast as its connection takes
// them. It returns when d has passed and every QoS 1 publish is settled.
func (g *Generator) Run(ctx context.Context, qos byte, rate float64,
	d time.Duration) (SendStats, error) {
	if qos > 1 {
		return SendStats{}, fmt.Errorf("qos %d: want 0 or 1", qos)
	}
	if d <= 0 || d > MaxDuration {
		return SendStats{}, fmt.Errorf("duration %v: %w (up to %v)", d, ErrLimits, MaxDuration)
	}
	var live []int
	for i, c := range g.clients {
		if c != nil {
			live = append(live, i)
		}
	}
	if len(live) == 0 {
		return SendStats{}, errors.New("no device connected")
	}
	var period time.Duration
	if rate > 0 {
		period = time.Duration(float64(len(live)) / rate * float64(time.Second))
	}

	var sent, failed atomic.Int64
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for k, i := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the devices over one period so they do not send
			// in step.
			var first time.Duration
			if period > 0 {
				first = time.Duration(int64(period) * int64(k) / int64(len(live)))
			}
			s, f := g.device(ctx, i, qos, start.Add(first), period, end)
			sent.Add(s)
			failed.Add(f)
		}()
	}
	wg.Wait()
	return SendStats{Sent: sent.Load(), Failed: failed.Load(), Took: time.Since(start)}, ctx.Err()
}

// device publishes for one device from next, every period (0: back to
// back), until end.
func (g *Generator) device(ctx context.Context, i int, qos byte, next time.Time,
	period time.Duration, end time.Time) (sent, failed int64) {
	c, topic := g.clients[i], g.topics[i]
	var window []mqtt.Token
	settle := func(tok mqtt.Token) {
		if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			sent++
		} else {
			failed++
		}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for ctx.Err() == nil {
		if period > 0 {
			wait := time.Until(next)
			if !next.Before(end) {
				break
			}
			if wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return sent, failed
				}
			}
			next = next.Add(period)
		} else if !time.Now().Before(end) {
			break
		}

		payload := Telemetry(StampMS(g.o.Now()), g.seq.Add(1))
		tok := c.Publish(topic, qos, false, payload)
		if qos == 0 {
			// Publish returns once paho's writer took the message: that
			// is the flow control. Its token only says it was written.
			if tok.Error() != nil {
				failed++
			} else {
				sent++
			}
			continue
		}
		window = append(window, tok)
		if len(window) >= g.o.Window {
			settle(window[0])
			window = window[1:]
		}
	}
	for _, tok := range window {
		settle(tok)
	}
	return sent, failed
}

// Close disconnects every device.
func (g *Generator) Close() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range g.clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.Disconnect(0)
		}()
	}
	wg.Wait()
	g.clients = nil
}

// StampMS is the ts of a message sent at t: Unix milliseconds, rounded to
// the nearest. Truncated, every delay measured from it would read up to
// 1 ms (0.5 ms on average) longer than it was; rounded, it reads within
// 0.5 ms either way and right on average.
func StampMS(t time.Time) int64 { return t.Add(500 * time.Microsecond).UnixMilli() }

// Telemetry is an air conditioner's telemetry with ts (Unix milliseconds)
// and seq.
func Telemetry(ts int64, seq uint64) []byte {
	b := make([]byte, 0, 192)
	b = append(b, `{"power":true,"mode":"cool","setpoint_c":26,"room_c":28.4,"outdoor_c":35.1,`+
		`"humidity_pct":71,"power_w":1150,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, '}')
}
