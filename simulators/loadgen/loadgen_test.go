package loadgen

import (
	"context"
	"errors"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	for _, a := range []string{"127.0.0.1:1883", "[::1]:1883", "localhost:1883", "127.0.0.5:1"} {
		if err := CheckLoopback(a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, a := range []string{"10.0.0.1:1883", "example.com:1883", "0.0.0.0:1883", "127.0.0.1"} {
		if err := CheckLoopback(a); err == nil {
			t.Errorf("%s accepted", a)
		}
	}
	if _, err := New(Options{Addr: "192.168.1.1:1883", Devices: Devices(1)}); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("New with a LAN address: %v", err)
	}
	if _, err := New(Options{Addr: "127.0.0.1:1883", Devices: Devices(MaxDevices + 1)}); !errors.Is(err, ErrLimits) {
		t.Errorf("New with too many devices: %v", err)
	}
}

func TestPayloadTS(t *testing.T) {
	p := Telemetry(1784000000123, 7)
	if got := payloadTS(p); got != 1784000000123 {
		t.Errorf("ts %d from %s", got, p)
	}
	if !strings.HasSuffix(string(p), `"ts":1784000000123,"seq":7}`) {
		t.Errorf("payload %s", p)
	}
	if payloadTS([]byte(`{"seq":1}`)) != 0 {
		t.Error("ts found where there is none")
	}
}

func TestHistogramQuantile(t *testing.T) {
	// 100 samples: 50 up to 1 ms, 40 in (1, 2] ms, 10 in (2, 5] ms.
	h := Histogram{Bounds: []float64{0.001, 0.002, 0.005, math.Inf(1)},
		Counts: []float64{50, 90, 100, 100}, Total: 100}
	est, lo, hi := h.Quantile(0.5)
	if est != time.Millisecond || lo != 0 || hi != time.Millisecond {
		t.Errorf("p50 = %v in (%v, %v], want 1ms in (0, 1ms]", est, lo, hi)
	}
	est, lo, hi = h.Quantile(0.95)
	if lo != 2*time.Millisecond || hi != 5*time.Millisecond ||
		est != 3500*time.Microsecond {
		t.Errorf("p95 = %v in (%v, %v], want 3.5ms in (2ms, 5ms]", est, lo, hi)
	}
	d := h.Sub(Histogram{Bounds: h.Bounds, Counts: []float64{50, 50, 50, 50}, Total: 50})
	if est, _, _ := d.Quantile(0.5); est != 1625*time.Microsecond {
		t.Errorf("p50 of the difference = %v, want 1.625ms", est)
	}
}

func TestHistogramQuantilePastLastBound(t *testing.T) {
	// 5 of 100 samples over 5 ms: the p99 is somewhere past it.
	h := Histogram{Bounds: []float64{0.001, 0.002, 0.005, math.Inf(1)},
		Counts: []float64{50, 90, 95, 100}, Total: 100}
	est, lo, hi := h.Quantile(0.99)
	if inf := time.Duration(math.MaxInt64); est != inf || hi != inf || lo != 5*time.Millisecond {
		t.Errorf("p99 = %v in (%v, %v], want +Inf past 5ms", est, lo, hi)
	}
}

func TestQuantiles(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	q := quantiles(d, []float64{0.5, 0.99, 1})
	want := []time.Duration{50 * time.Millisecond, 99 * time.Millisecond, 100 * time.Millisecond}
	for i := range q {
		if q[i] != want[i] {
			t.Errorf("quantile %d = %v, want %v", i, q[i], want[i])
		}
	}
}

// The generator and the subscriber against Mosquitto: everything the
// devices send at a set rate arrives, at about that rate, with latencies
// read from the payloads; QoS 1 is acknowledged end to end.
func TestGeneratorThroughMosquitto(t *testing.T) {
	m, err := StartMosquitto("/usr/sbin/mosquitto", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.Stop(); err != nil {
			t.Error(err)
		}
	}()

	g, err := New(Options{Addr: m.Addr, Devices: Devices(20)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx := context.Background()
	if cs := g.Connect(ctx); cs.Connected != 20 || cs.Failed != 0 {
		t.Fatalf("connect: %+v", cs)
	}

	for _, qos := range []byte{0, 1} {
		sub, err := Subscribe(m.Addr, "sink", "", "", "waystation/v1/+/+/telemetry", qos, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, err := g.Run(ctx, qos, 400, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if st.Sent < 300 || st.Sent > 420 || st.Failed != 0 {
			t.Errorf("qos %d: sent %d (failed %d) in a second at 400/s", qos, st.Sent, st.Failed)
		}
		got := WaitQuiet(ctx, sub.Count, st.Sent, 2*time.Second)
		if got != st.Sent {
			t.Errorf("qos %d: subscriber read %d of %d", qos, got, st.Sent)
		}
		q, n := sub.Latencies().Percentiles(0.5, 0.99)
		if int64(n) != st.Sent || q[0] < 0 || q[1] > 2*time.Second {
			t.Errorf("qos %d: %d latencies, p50 %v p99 %v", qos, n, q[0], q[1])
		}
		if err := sub.Close(); err != nil {
			t.Errorf("subscriber: %v", err)
		}
	}
	if g.Connected() != 20 {
		t.Errorf("%d of 20 devices still connected", g.Connected())
	}
}

func TestReadProc(t *testing.T) {
	a, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for x := 0; time.Since(a.At) < 200*time.Millisecond; x++ {
		_ = x * x // burn some CPU
	}
	b, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if a.RSS <= 0 || a.Thread <= 0 || b.CPU < a.CPU || CPUShare(a, b) > float64(runtime.NumCPU())+0.1 {
		t.Errorf("read %+v then %+v", a, b)
	}
}

func TestStampMSRounds(t *testing.T) {
	base := time.UnixMilli(1784000000123)
	for _, tc := range []struct {
		after time.Duration
		want  int64
	}{
		{0, 1784000000123},
		{499 * time.Microsecond, 1784000000123},
		{500 * time.Microsecond, 1784000000124},
		{999 * time.Microsecond, 1784000000124},
	} {
		if got := StampMS(base.Add(tc.after)); got != tc.want {
			t.Errorf("StampMS(+%v) = %d, want %d", tc.after, got, tc.want)
		}
	}
}
