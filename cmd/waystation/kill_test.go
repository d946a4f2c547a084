package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/schemas"
)

// envChildArgs, set by a test, makes the test binary run the waystation
// command with these arguments (a JSON array) instead of the tests: a real
// server process the test can kill, without building a binary.
const envChildArgs = "WAYSTATION_TEST_CHILD_ARGS"

// childMain runs the command line of envChildArgs, as main does.
func childMain() int {
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(envChildArgs)), &args); err != nil {
		fmt.Fprintln(os.Stderr, "waystation:", envChildArgs+":", err)
		return 2
	}
	cmd := newRootCmd()
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "waystation:", err)
		return 1
	}
	return 0
}

// serverProcess is `waystation serve` in a child process.
type serverProcess struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

func startServerProcess(t *testing.T, args ...string) *serverProcess {
	t.Helper()
	buf, _ := json.Marshal(append([]string{"serve"}, args...))
	p := &serverProcess{logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), envChildArgs+"="+string(buf))
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("server process log:\n%s", p.logs)
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *serverProcess) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// freePort returns a loopback address nobody listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// killDevice is a paho device that reconnects by itself (a new client each
// time, with a jittered backoff), announces itself with a retained status
// on every connection and sends telemetry.
type killDevice struct {
	id, station, secret, addr string
	acked                     atomic.Int64 // the last seq the broker acknowledged
}

func newKillDevice(addr, station, id, secret string) *killDevice {
	return &killDevice{id: id, station: station, secret: secret, addr: addr}
}

// connect makes one connection, or returns nil.
func (d *killDevice) connect() mqtt.Client {
	statusTopic := schemas.DeviceTopic(d.station, d.id, schemas.ChannelStatus)
	conn := rand.Text()[:8]
	opts := mqtt.NewClientOptions().AddBroker("tcp://"+d.addr).SetClientID(d.id).
		SetUsername(d.id).SetPassword(d.secret).SetCleanSession(true).SetAutoReconnect(false).
		SetConnectTimeout(2*time.Second).SetKeepAlive(10*time.Second).
		SetWill(statusTopic, fmt.Sprintf(`{"online":false,"kind":"ac","conn":%q}`, conn), 1, true)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return nil
	}
	tok := c.Publish(statusTopic, 1, true, fmt.Sprintf(`{"online":true,"kind":"ac","conn":%q}`, conn))
	if !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return nil
	}
	return c
}

// run connects and sends telemetry every period until stop is closed;
// fault is the AC's fault code.
func (d *killDevice) run(stop <-chan struct{}, period time.Duration, fault string) {
	topic := schemas.DeviceTopic(d.station, d.id, schemas.ChannelTelemetry)
	tick := time.NewTicker(period)
	defer tick.Stop()
	var c mqtt.Client
	defer func() {
		if c != nil {
			c.Disconnect(50)
		}
	}()
	for seq := int64(1); ; {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if c == nil {
			if c = d.connect(); c == nil {
				select { // back off, 100-300 ms
				case <-stop:
					return
				case <-time.After(100*time.Millisecond + time.Duration(seq%3)*100*time.Millisecond):
				}
				continue
			}
		}
		payload := fmt.Sprintf(`{"power":true,"mode":"cool","setpoint_c":26,"room_c":27.5,`+
			`"outdoor_c":35.2,"humidity_pct":70,"power_w":1180,"fault":%q,"seq":%d}`, fault, seq)
		tok := c.Publish(topic, 1, false, payload)
		if !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
			c.Disconnect(0)
			c = nil
			continue
		}
		d.acked.Store(seq)
		seq++
	}
}

// TestKill9UnderLoad kills the server with SIGKILL while devices report and
// operators register devices, and restarts it on the same data folder: the
// data file opens, no registration, alert or command that was acknowledged
// is lost, twins and history come back, the devices reconnect by
// themselves, and nobody is paged for the devices the restart dropped.
// WAYSTATION_SOAK=1 runs more devices through more kills.
func TestKill9UnderLoad(t *testing.T) {
	stations, perStation, kills := 5, 4, 1
	if os.Getenv("WAYSTATION_SOAK") != "" {
		stations, perStation, kills = 25, 4, 4
	}
	deadline := time.Now().Add(time.Minute) // moved on at each kill
	data := t.TempDir()
	mqttAddr, httpAddr := freePort(t), freePort(t)
	args := []string{"--data", data, "--mqtt", mqttAddr, "--ws", "", "--http", httpAddr,
		"--log-level", "warn", "--history-flush", "1s"} // history written before the kill
	url := "http://" + httpAddr
	p := startServerProcess(t, args...)
	waitHealthy(t, url, deadline, p)
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{url: url, token: strings.TrimSpace(string(tok))}

	// Devices that report 400 messages a second in all; one with a fault.
	var devs []*killDevice
	for s := range stations {
		st := fmt.Sprintf("ys-%03d", s+1)
		for i := range perStation {
			id := fmt.Sprintf("%s-ac%d", st, i)
			devs = append(devs, newKillDevice(mqttAddr, st, id, ts.register(t, st, id, schemas.KindAC)))
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for i, d := range devs {
		fault := ""
		if i == 0 {
			fault = "E4"
		}
		period := time.Duration(len(devs)) * time.Second / 400
		wg.Go(func() { d.run(stop, period, fault) })
	}

	for cycle := range kills {
		deadline = time.Now().Add(time.Minute)
		// Operators register devices all along; those answered 201 must
		// survive.
		var regMu sync.Mutex
		var registered []string
		stopReg := make(chan struct{})
		regDone := make(chan struct{})
		go func() {
			defer close(regDone)
			client := &http.Client{Timeout: 2 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stopReg:
					return
				default:
				}
				id := fmt.Sprintf("ys-%03d-lock%d-%d", 1+i%stations, cycle, i)
				body := fmt.Sprintf(`{"id":%q,"station":"ys-%03d","kind":"lock"}`, id, 1+i%stations)
				req, _ := http.NewRequest("POST", url+"/api/v1/devices", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+ts.token)
				resp, err := client.Do(req)
				if err != nil {
					continue // the server is gone: not acknowledged
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					regMu.Lock()
					registered = append(registered, id)
					regMu.Unlock()
				}
			}
		}()

		// Wait until every device reported, the fault is an alert, and a
		// command is accepted; then let a twin flush pass.
		eventually(t, time.Until(deadline), "every device reported", func() bool {
			for _, d := range devs {
				if d.acked.Load() == 0 {
					return false
				}
			}
			return true
		})
		var alerts []controller.Alert
		eventually(t, time.Until(deadline), "the fault raised an alert", func() bool {
			return ts.api(t, "GET", "/api/v1/alerts?rule=ac.fault", nil, &alerts) == 200 &&
				len(alerts) == 1
		})
		var cmd controller.CommandRecord
		if code := ts.api(t, "POST", "/api/v1/devices/"+devs[1].id+"/commands",
			map[string]any{"name": "device.ping"}, &cmd); code != 201 {
			t.Fatalf("command: %d", code)
		}
		before := map[string]uint64{}
		time.Sleep(1500 * time.Millisecond) // a twin and a history flush, under load
		for _, d := range devs {
			var v controller.DeviceView
			ts.api(t, "GET", "/api/v1/devices/"+d.id, nil, &v)
			if v.Twin == nil || len(v.Twin.State) == 0 {
				t.Fatalf("%s: no twin before the kill", d.id)
			}
			before[d.id] = v.Twin.Seq
		}
		killedAt := time.Now()

		p.kill()
		close(stopReg)
		<-regDone
		regMu.Lock()
		acked := registered
		regMu.Unlock()
		if len(acked) == 0 {
			t.Fatal("no registration was acknowledged before the kill")
		}

		p = startServerProcess(t, args...)
		start := time.Now()
		waitHealthy(t, url, deadline, p)
		t.Logf("cycle %d: %d registrations acknowledged; ready %v after the restart",
			cycle+1, len(acked), time.Since(start).Round(time.Millisecond))

		// Every acknowledged registration is there.
		var list []controller.DeviceView
		if code := ts.api(t, "GET", "/api/v1/devices", nil, &list); code != 200 {
			t.Fatalf("devices: %d", code)
		}
		have := map[string]controller.DeviceView{}
		for _, v := range list {
			have[v.ID] = v
		}
		for _, id := range acked {
			if _, ok := have[id]; !ok {
				t.Errorf("registration of %s acknowledged, lost in the kill", id)
			}
		}
		// Twins came back as of before the kill (a flush had passed).
		for _, d := range devs {
			v := have[d.id]
			if v.Twin == nil || len(v.Twin.State) == 0 || v.Twin.Seq == 0 {
				t.Errorf("%s: twin lost in the kill: %+v", d.id, v.Twin)
			}
		}
		// The alert and the command were acknowledged: they are there.
		var after []controller.Alert
		ts.api(t, "GET", "/api/v1/alerts?rule=ac.fault", nil, &after)
		if len(after) != 1 || after[0].ID != alerts[0].ID {
			t.Errorf("ac.fault alert %v before the kill, %v after", alerts, after)
		}
		if code := ts.api(t, "GET", "/api/v1/commands/"+cmd.ID, nil, nil); code != 200 {
			t.Errorf("command %s acknowledged, lost in the kill: %d", cmd.ID, code)
		}
		// History up to the last flush is there.
		var page controller.HistoryPage
		ts.api(t, "GET", "/api/v1/devices/"+devs[2].id+"/history?from="+
			killedAt.Add(-time.Minute).UTC().Format(time.RFC3339), nil, &page)
		if len(page.Samples) == 0 {
			t.Errorf("%s: no history before the kill", devs[2].id)
		}

		// The devices come back by themselves and report again.
		eventually(t, time.Until(deadline), "every device back online and reporting", func() bool {
			for _, d := range devs {
				var v controller.DeviceView
				if ts.api(t, "GET", "/api/v1/devices/"+d.id, nil, &v) != 200 || v.Twin == nil ||
					!v.Twin.Online || v.Twin.Seq <= before[d.id] {
					return false
				}
			}
			return true
		})
		t.Logf("cycle %d: every device back %v after the restart", cycle+1,
			time.Since(start).Round(time.Millisecond))
		// Nobody is paged for the devices the kill cut off.
		for _, rule := range []string{"device.offline", "station.down"} {
			var firing []controller.Alert
			ts.api(t, "GET", "/api/v1/alerts?state=firing&rule="+rule, nil, &firing)
			if len(firing) != 0 {
				t.Errorf("%d %s alerts after the restart", len(firing), rule)
			}
		}
		if t.Failed() {
			return
		}
	}
}

// waitHealthy polls /healthz until it answers 200.
func waitHealthy(t *testing.T, url string, deadline time.Time, p *serverProcess) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("the server process ended: %v", p.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/healthz not ready", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
