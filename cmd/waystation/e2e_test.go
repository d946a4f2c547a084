package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/schemas"
)

// testServer is `serve` running in-process on free loopback ports.
type testServer struct {
	s      *server
	url    string // HTTP base URL
	mqtt   string // host:port of the MQTT listener
	token  string
	data   string
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, edit func(*serveOptions)) *testServer {
	t.Helper()
	o := serveOptions{
		data: t.TempDir(), mqttAddr: "127.0.0.1:0", wsAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0",
		maxPacketBytes: 64 << 10, logLevel: "info", timeZone: "Asia/Shanghai",
		demoStations: 129, demoSeed: 1,
	}
	if edit != nil {
		edit(&o)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := openServer(o, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{s: s, logs: logs, cancel: cancel, done: make(chan error, 1), data: o.data}
	go func() { ts.done <- s.run(ctx) }()
	select {
	case <-s.ready:
	case err := <-ts.done:
		t.Fatalf("serve stopped: %v\n%s", err, logs)
	case <-time.After(10 * time.Second):
		t.Fatalf("serve not ready after 10s\n%s", logs)
	}
	t.Cleanup(func() {
		ts.stop(t)
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	ts.url = s.httpURL()
	if s.mqtt != nil { // nil with an external broker
		ts.mqtt = loopback(s.mqtt.TCPAddr())
	}
	tok, err := os.ReadFile(filepath.Join(o.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	ts.token = strings.TrimSpace(string(tok))
	return ts
}

func (ts *testServer) stop(t *testing.T) {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	ts.cancel = nil
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("serve did not stop within 15s")
	}
}

// api calls the HTTP API and decodes the answer into out.
func (ts *testServer) api(t *testing.T, method, path string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		buf, _ := json.Marshal(in)
		body = bytes.NewReader(buf)
	}
	req, _ := http.NewRequest(method, ts.url+path, body)
	req.Header.Set("Authorization", "Bearer "+ts.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

// register adds a station (if needed) and a device, returning its secret.
func (ts *testServer) register(t *testing.T, station, device string, kind schemas.Kind) string {
	t.Helper()
	st := map[string]any{"id": station, "name": "Test " + station, "lat": 32.6, "lon": 116.3,
		"hours": "24h"}
	if code := ts.api(t, "POST", "/api/v1/stations", st, nil); code != 201 && code != 409 {
		t.Fatalf("add station: %d", code)
	}
	var nd controller.NewDevice
	dev := map[string]any{"id": device, "station": station, "kind": kind}
	if code := ts.api(t, "POST", "/api/v1/devices", dev, &nd); code != 201 {
		t.Fatalf("add device: %d", code)
	}
	if nd.Secret == "" {
		t.Fatal("no secret in the registration answer")
	}
	return nd.Secret
}

// online registers a device, connects it over MQTT and has it report
// itself online on connection conn.
func (ts *testServer) online(t *testing.T, station, id string, kind schemas.Kind, conn string) *device {
	t.Helper()
	secret := ts.register(t, station, id, kind)
	d, err := connectDevice(t, ts.mqtt, station, id, secret, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}
	d.publish(t, schemas.ChannelStatus, true,
		fmt.Sprintf(`{"online":true,"kind":%q,"conn":%q}`, kind, conn))
	return d
}

// twin reads a device through the CLI, as an operator would.
func (ts *testServer) twinCLI(t *testing.T, device string) controller.DeviceView {
	t.Helper()
	out, err := runCLI("devices", "show", device, "-o", "json", "--server", ts.url, "--token", ts.token)
	if err != nil {
		t.Fatalf("devices show: %v\n%s", err, out)
	}
	var v controller.DeviceView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("devices show -o json: %v\n%s", err, out)
	}
	return v
}

// metric returns the value of a sample on /metrics whose labels include
// every given pair, summed over the rest.
func (ts *testServer) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(ts.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	fam, ok := fams[name]
	if !ok {
		return 0
	}
	sum := 0.0
outer:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue outer
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		}
	}
	return sum
}

func runCLI(args ...string) (string, error) {
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// eventually polls cond until it holds or the time runs out.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// device is a paho client logged in as a registered device.
type device struct {
	c       mqtt.Client
	station string
	id      string
	conn    net.Conn // the last connection, to cut it without DISCONNECT
	mu      sync.Mutex
}

type deviceOpts struct {
	will    string // offline status payload; "" for none
	noRetry bool
}

func connectDevice(t *testing.T, addr, station, id, secret string, o deviceOpts) (*device, error) {
	d := &device{station: station, id: id}
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetUsername(id).SetPassword(secret).SetAutoReconnect(false).SetCleanSession(true).
		SetConnectTimeout(5 * time.Second).SetKeepAlive(30 * time.Second)
	if o.will != "" {
		opts.SetWill(schemas.DeviceTopic(station, id, schemas.ChannelStatus), o.will, 1, true)
	}
	opts.SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
		c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		d.mu.Lock()
		d.conn = c
		d.mu.Unlock()
		return c, err
	})
	d.c = mqtt.NewClient(opts)
	tok := d.c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { d.c.Disconnect(50) })
	return d, nil
}

func (d *device) publish(t *testing.T, ch schemas.Channel, retained bool, payload string) {
	t.Helper()
	tok := d.c.Publish(schemas.DeviceTopic(d.station, d.id, ch), 1, retained, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", ch, tok.Error())
	}
}

// cut drops the device's TCP connection without an MQTT DISCONNECT.
func (d *device) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		d.conn.Close()
	}
}

func mosquittoPub(t *testing.T, addr, id, secret, topic, payload string, extra ...string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"-h", host, "-p", port, "-i", id, "-u", id, "-P", secret,
		"-t", topic, "-m", payload, "-q", "1"}, extra...)
	out, err := exec.Command("mosquitto_pub", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
