package controller

import (
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// benchACs is how many simulated ACs the command benchmark drives.
const benchACs = 100

func benchAC(i int) string { return fmt.Sprintf("bench-ac-%03d", i) }

// ackTimes hears acknowledgements, for the benchmark.
type ackTimes struct {
	mu   sync.Mutex
	at   map[string]time.Time
	rt   map[string]float64 // publish to answer, ms, as recorded on the command
	want int
	done chan struct{}
}

func (a *ackTimes) Notify(n Notice) {
	if n.Type != NoticeCommandAcknowledged {
		return
	}
	rec := n.Data.(CommandRecord)
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.at[rec.ID]; dup {
		return
	}
	a.at[rec.ID] = now
	a.rt[rec.ID] = rec.RoundTripMS
	if len(a.at) == a.want {
		close(a.done)
	}
}

func (a *ackTimes) reset(want int) {
	a.mu.Lock()
	a.at, a.rt, a.want, a.done = map[string]time.Time{}, map[string]float64{}, want,
		make(chan struct{})
	a.mu.Unlock()
}

// BenchmarkCommandRoundTrip sends ac.set commands to 100 ACs (paho
// clients over TCP that answer every command at once, so the figures are
// the platform's rather than a device's) through Commands, the embedded
// broker and ingest, at 1,000 and 5,000 commands a second in all, open
// loop. b.N is the number of commands. It reports two round trips:
//
//   - rt: from publishing the command to its answer reaching Commands,
//     the waystation_command_round_trip_seconds of the metrics;
//   - e2e: from the IssueCommand call to the acknowledgement, which adds
//     the durable write of the command before it is sent, and any wait
//     behind an earlier command to the same AC (one at a time per device).
func BenchmarkCommandRoundTrip(b *testing.B) {
	var extra []devices.Device
	for i := range benchACs {
		extra = append(extra, devices.Device{ID: benchAC(i), Station: "ys-a", Kind: schemas.KindAC})
	}
	acks := &ackTimes{}
	r := newCmdRig(b, func(o *CommandsOptions) {
		o.Notifier = acks
		o.RetryEvery = time.Hour // the rig's clock stands still anyway
		o.DefaultTTL = time.Hour
	}, extra...)
	for i := range benchACs {
		benchResponder(b, r, benchAC(i))
	}
	for _, rate := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			benchCommands(b, r, acks, rate)
		})
	}
}

func benchCommands(b *testing.B, r *cmdRig, acks *ackTimes, rate int) {
	const answerWait = 30 * time.Second
	interval := time.Second / time.Duration(rate)
	acks.reset(b.N)
	issued := make([]time.Time, b.N)
	ids := make([]string, b.N)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error

	cpuBefore := cpuTime(b)
	b.ResetTimer()
	start := time.Now()
	for n := range b.N {
		// Open loop: commands leave on schedule whatever the answers do;
		// each from its own goroutine, as API calls would.
		time.Sleep(time.Until(start.Add(time.Duration(n) * interval)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			issued[n] = time.Now()
			id, err := r.cmds().IssueCommand(CommandRequest{Device: benchAC(n % benchACs),
				Name: schemas.CmdACSet, Args: map[string]any{"setpoint_c": 20 + n%8},
				Issuer: "schedule:bench"})
			if err != nil {
				errMu.Lock()
				firstErr = err
				errMu.Unlock()
			}
			ids[n] = id
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	select {
	case <-acks.done:
	case <-time.After(answerWait):
		acks.mu.Lock()
		defer acks.mu.Unlock()
		b.Fatalf("%d of %d acknowledged after %v", len(acks.at), b.N, answerWait)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime(b) - cpuBefore

	acks.mu.Lock()
	defer acks.mu.Unlock()
	e2e := make([]float64, 0, b.N)
	rt := make([]float64, 0, b.N)
	for n, id := range ids {
		e2e = append(e2e, float64(acks.at[id].Sub(issued[n]))/float64(time.Millisecond))
		rt = append(rt, acks.rt[id])
	}
	report := func(xs []float64, name string) {
		slices.Sort(xs)
		pct := func(p float64) float64 { return xs[min(len(xs)-1, int(p*float64(len(xs))))] }
		b.ReportMetric(pct(0.50), name+"-p50-ms")
		b.ReportMetric(pct(0.99), name+"-p99-ms")
		b.ReportMetric(xs[len(xs)-1], name+"-max-ms")
	}
	report(rt, "rt")
	report(e2e, "e2e")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cmd/s")
	// The whole process's CPU per command: the platform's part and the
	// responders' (paho on both ends of each message), so what a command
	// costs when CPU is scarce.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/cmd")
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchResponder connects a paho client as an AC that answers every
// command ok at once, and waits for its twin to be online.
func benchResponder(b *testing.B, r *cmdRig, id string) {
	b.Helper()
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + r.broker.TCPAddr()).SetClientID(id).
		SetUsername(id).SetPassword(r.secrets[id]).SetAutoReconnect(false).
		SetCleanSession(true).SetOrderMatters(false)
	c := mqtt.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		b.Fatalf("connect %s: %v", id, t.Error())
	}
	b.Cleanup(func() { c.Disconnect(50) })
	result := schemas.DeviceTopic("ys-a", id, schemas.ChannelCmdResult)
	t := c.Subscribe(schemas.DeviceTopic("ys-a", id, schemas.ChannelCmd), 1,
		func(_ mqtt.Client, m mqtt.Message) {
			cmd, err := schemas.DecodeCommand(m.Payload())
			if err != nil {
				b.Errorf("command %s: %v", m.Payload(), err)
				return
			}
			c.Publish(result, 1, false, `{"id":"`+cmd.ID+`","ok":true}`)
		})
	if !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		b.Fatalf("subscribe: %v", t.Error())
	}
	t = c.Publish(schemas.DeviceTopic("ys-a", id, schemas.ChannelStatus), 1, true,
		`{"online":true,"kind":"ac","conn":"b1"}`)
	if !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		b.Fatalf("status: %v", t.Error())
	}
	r.waitOnline(b, id, true)
}
