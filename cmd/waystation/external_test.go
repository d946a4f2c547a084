package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/broker"
	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/internal/mosquitto"
	"github.com/waystation/waystation/schemas"
)

// externalRig is Debian's mosquitto with login files made by export-auth,
// and the controller's password for it.
type externalRig struct {
	m                 *mosquitto.Broker
	passwd, acl, pass string // files
}

// startMosquittoForServe starts mosquitto knowing only the controller's
// login; export-auth adds the devices later.
func startMosquittoForServe(t *testing.T) *externalRig {
	t.Helper()
	dir := t.TempDir()
	r := &externalRig{passwd: filepath.Join(dir, "passwd"), acl: filepath.Join(dir, "acl"),
		pass: filepath.Join(dir, "controller.password")}
	if err := os.WriteFile(r.pass, []byte("controller-pw-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hash, err := devices.MosquittoHash("controller-pw-1")
	if err != nil {
		t.Fatal(err)
	}
	pw, acl, err := broker.MosquittoFiles([]broker.Login{{User: controllerUser, Hash: hash,
		Controller: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.passwd, pw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.acl, acl, 0o600); err != nil {
		t.Fatal(err)
	}
	r.m = mosquitto.Start(t, mosquitto.Config{PasswordFile: r.passwd, ACLFile: r.acl})
	return r
}

// serveOn edits serve's options to attach to the rig's broker.
func (r *externalRig) serveOn(o *serveOptions) {
	o.ext = externalFlags{broker: r.m.URL(), user: controllerUser, passwordFile: r.pass,
		maxReconnect: 200 * time.Millisecond}
}

// exportAuth writes the login files from running servers and reloads
// mosquitto.
func (r *externalRig) exportAuth(t *testing.T, servers ...*testServer) {
	t.Helper()
	args := []string{"broker", "export-auth", "--passwd", r.passwd, "--acl", r.acl,
		"--controller-password-file", r.pass}
	for _, ts := range servers {
		args = append(args, "--server", ts.url, "--token", ts.token)
	}
	out, err := runCLI(args...)
	if err != nil {
		t.Fatalf("export-auth: %v\n%s", err, out)
	}
	r.m.Reload()
}

// connectExternal connects a device to mosquitto, trying again while a
// reload of its files is under way.
func connectExternal(t *testing.T, r *externalRig, station, id, secret string,
	o deviceOpts) *device {
	t.Helper()
	var d *device
	eventually(t, 5*time.Second, "device "+id+" logs in to mosquitto", func() bool {
		var err error
		d, err = connectDevice(t, r.m.Addr, station, id, secret, o)
		return err == nil
	})
	return d
}

// TestExternalBrokerEndToEnd is the foundation's end-to-end flow with
// Debian's mosquitto in place of the embedded broker: logins and topics
// are checked by mosquitto from the files export-auth wrote.
func TestExternalBrokerEndToEnd(t *testing.T) {
	requireMosquitto(t)
	r := startMosquittoForServe(t)
	ts := startServer(t, r.serveOn)
	secretA := ts.register(t, "ys-001", "ys-001-ac", schemas.KindAC)
	ts.register(t, "ys-002", "ys-002-ac", schemas.KindAC)
	r.exportAuth(t, ts)

	// mosquitto_pub as the device: retained status, then telemetry.
	status := `{"online":true,"kind":"ac","firmware":"3.2.1","model":"KFR-35GW","conn":"m1"}`
	eventually(t, 5*time.Second, "mosquitto_pub logs in", func() bool {
		host, port, _ := strings.Cut(r.m.Addr, ":")
		return exec.Command("mosquitto_pub", "-h", host, "-p", port, "-i", "ys-001-ac", "-u",
			"ys-001-ac", "-P", secretA, "-q", "1", "-r", "-m", status,
			"-t", schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelStatus)).Run() == nil
	})
	mosquittoPub(t, r.m.Addr, "ys-001-ac", secretA,
		schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelTelemetry), acTelemetry(1, 29.5))
	eventually(t, 5*time.Second, "twin shows the telemetry sent through mosquitto", func() bool {
		v := ts.twinCLI(t, "ys-001-ac")
		return v.Twin != nil && v.Twin.Seq == 1 && v.Twin.Online && v.Twin.Firmware == "3.2.1"
	})

	// A wrong secret is refused by mosquitto.
	host, port, _ := strings.Cut(r.m.Addr, ":")
	if out, err := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-i", "ys-001-ac",
		"-u", "ys-001-ac", "-P", secretA+"x", "-q", "1", "-m", "{}",
		"-t", schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelTelemetry)).CombinedOutput(); err == nil {
		t.Fatalf("mosquitto let a wrong secret in: %s", out)
	}

	// paho, with a will: another device's topic is refused by mosquitto,
	// its own topics flow.
	d := connectExternal(t, r, "ys-001", "ys-001-ac", secretA, deviceOpts{
		will: `{"online":false,"kind":"ac","conn":"m2"}`})
	d.publish(t, schemas.ChannelStatus, true,
		`{"online":true,"kind":"ac","firmware":"3.2.1","conn":"m2"}`)
	// Mosquitto acknowledges a refused QoS 1 publish and drops it.
	tok := d.c.Publish(schemas.DeviceTopic("ys-002", "ys-002-ac", schemas.ChannelTelemetry), 1,
		false, acTelemetry(7, 31))
	tok.WaitTimeout(3 * time.Second)
	// Mosquitto 2.0 grants a subscription its ACL refuses, then delivers
	// nothing on it: a command to another device does not reach this one,
	// its own does.
	got := make(chan string, 4)
	for _, dev := range []struct{ station, id string }{{"ys-002", "ys-002-ac"}, {"ys-001", "ys-001-ac"}} {
		sub := d.c.Subscribe(schemas.DeviceTopic(dev.station, dev.id, schemas.ChannelCmd), 1,
			func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() })
		if !sub.WaitTimeout(3*time.Second) || sub.Error() != nil {
			t.Fatalf("subscribe: %v", sub.Error())
		}
	}
	for _, topic := range []string{schemas.DeviceTopic("ys-002", "ys-002-ac", schemas.ChannelCmd),
		schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelCmd)} {
		if err := ts.s.bus().Publish(topic, 1, false, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case topic := <-got:
		if topic != schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelCmd) {
			t.Fatalf("the device got a command on %s", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the device's own command did not arrive")
	}
	d.publish(t, schemas.ChannelTelemetry, false, acTelemetry(2, 27.25))
	eventually(t, 5*time.Second, "own telemetry processed", func() bool {
		return ts.twinCLI(t, "ys-001-ac").Twin.Seq == 2
	})
	if v := ts.twinCLI(t, "ys-002-ac"); v.Twin != nil {
		t.Fatalf("the foreign message reached ys-002-ac's twin: %+v", v.Twin)
	}
	if got := ts.metric(t, "waystation_messages_total", "channel", "telemetry", "result", "ok"); got != 2 {
		t.Fatalf("telemetry ok = %v, want 2", got)
	}

	// A fault reported through mosquitto is alerted, once.
	d.publish(t, schemas.ChannelTelemetry, false, acFault(3, "E4"))
	d.publish(t, schemas.ChannelTelemetry, false, acFault(4, "E4"))
	eventually(t, 5*time.Second, "the AC fault is alerted", func() bool {
		l := ts.firingAlerts(t, "ys-001-ac", controller.RuleACFault)
		return len(l) == 1 && l[0].Count >= 1 && ts.twinCLI(t, "ys-001-ac").Twin.Seq == 4
	})

	// The will, published by mosquitto when the connection drops, takes
	// the device offline.
	d.cut()
	eventually(t, 5*time.Second, "the will takes the twin offline", func() bool {
		return !ts.twinCLI(t, "ys-001-ac").Twin.Online
	})
	if got := ts.metric(t, "waystation_mqtt_connected"); got != 1 {
		t.Fatalf("waystation_mqtt_connected = %v", got)
	}
}

// TestExternalBrokerRestart: mosquitto is killed and started again without
// persistence; the controller reconnects, subscribes again, and a message
// sent afterwards reaches the twin.
func TestExternalBrokerRestart(t *testing.T) {
	requireMosquitto(t)
	r := startMosquittoForServe(t)
	ts := startServer(t, r.serveOn)
	secret := ts.register(t, "ys-001", "ys-001-ac", schemas.KindAC)
	r.exportAuth(t, ts)
	d := connectExternal(t, r, "ys-001", "ys-001-ac", secret, deviceOpts{})
	d.publish(t, schemas.ChannelTelemetry, false, acTelemetry(1, 29))
	eventually(t, 5*time.Second, "first telemetry", func() bool {
		v := ts.twinCLI(t, "ys-001-ac")
		return v.Twin != nil && v.Twin.Seq == 1
	})

	r.m.Kill()
	eventually(t, 5*time.Second, "the controller notices the broker is gone", func() bool {
		return ts.metric(t, "waystation_mqtt_connected") == 0
	})
	r.m.Restart()
	eventually(t, 10*time.Second, "the controller subscribes again", func() bool {
		return ts.metric(t, "waystation_mqtt_resubscribes_total") >= 1
	})
	d = connectExternal(t, r, "ys-001", "ys-001-ac", secret, deviceOpts{})
	d.publish(t, schemas.ChannelTelemetry, false, acFault(2, "E7"))
	eventually(t, 5*time.Second, "a fault sent after the restart is alerted", func() bool {
		return ts.twinCLI(t, "ys-001-ac").Twin.Seq == 2 &&
			len(ts.firingAlerts(t, "ys-001-ac", controller.RuleACFault)) == 1
	})
	if got := ts.metric(t, "waystation_mqtt_connection_lost_total"); got != 1 {
		t.Fatalf("connection lost %v times, want 1", got)
	}
}

// TestEmbeddedBrokerRestartWithoutPersistence: serve stops, the embedded
// broker's store is deleted, serve starts again on the same data: the
// controller subscribes anew and a message sent afterwards reaches the
// twin.
func TestEmbeddedBrokerRestartWithoutPersistence(t *testing.T) {
	data := t.TempDir()
	ts := startServer(t, func(o *serveOptions) { o.data = data })
	secret := ts.register(t, "ys-001", "ys-001-ac", schemas.KindAC)
	d, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-ac", secret, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}
	d.publish(t, schemas.ChannelStatus, true, `{"online":true,"kind":"ac","conn":"c1"}`)
	d.publish(t, schemas.ChannelTelemetry, false, acTelemetry(1, 29))
	eventually(t, 5*time.Second, "first telemetry", func() bool {
		v := ts.twinCLI(t, "ys-001-ac")
		return v.Twin != nil && v.Twin.Seq == 1
	})
	d.c.Disconnect(50)
	ts.stop(t)
	if err := os.Remove(filepath.Join(data, "broker.db")); err != nil {
		t.Fatal(err)
	}

	ts = startServer(t, func(o *serveOptions) { o.data = data })
	d, err = connectDevice(t, ts.mqtt, "ys-001", "ys-001-ac", secret, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}
	d.publish(t, schemas.ChannelTelemetry, false, acFault(2, "E7"))
	eventually(t, 5*time.Second, "a fault sent after the restart is alerted", func() bool {
		return ts.twinCLI(t, "ys-001-ac").Twin.Seq == 2 &&
			len(ts.firingAlerts(t, "ys-001-ac", controller.RuleACFault)) == 1
	})
}

// TestServeBrokerFlags: --broker is checked at start-up, its login too.
func TestServeBrokerFlags(t *testing.T) {
	requireMosquitto(t)
	r := startMosquittoForServe(t)
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("not-it\n"), 0o600)
	for _, c := range []struct {
		ext  externalFlags
		demo bool
		want string
	}{
		{externalFlags{broker: "localhost:1883", user: "u", passwordFile: r.pass}, false, "want tcp://host:port"},
		{externalFlags{broker: "http://localhost:1883", user: "u", passwordFile: r.pass}, false, "scheme"},
		{externalFlags{broker: r.m.URL(), user: "u"}, false, "--broker-password-file"},
		{externalFlags{broker: r.m.URL(), user: "u", passwordFile: "/nonexistent"}, false, "nonexistent"},
		{externalFlags{broker: r.m.URL(), user: controllerUser, passwordFile: r.pass}, true, "--demo"},
		{externalFlags{passwordFile: r.pass}, false, "go with --broker"},
		{externalFlags{broker: r.m.URL(), user: controllerUser, passwordFile: wrong}, false, "not Authorized"},
	} {
		o := serveOptions{data: t.TempDir(), mqttAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0",
			maxPacketBytes: 64 << 10, logLevel: "info", timeZone: "Asia/Shanghai", demo: c.demo,
			demoStations: 3, ext: c.ext}
		s, err := openServer(o, discardLogger())
		if err == nil {
			s.close()
			t.Errorf("%+v: started", c.ext)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want it to say %q", c.ext, err, c.want)
		}
	}
}

// TestExportAuthOffline: export-auth reads a stopped server's data folder;
// devices registered before broker hashes were kept get new secrets with
// --rotate-missing, which mosquitto then accepts.
func TestExportAuthOffline(t *testing.T) {
	data := t.TempDir()
	ts := startServer(t, func(o *serveOptions) { o.data = data })
	ts.register(t, "ys-001", "ys-001-ac", schemas.KindAC)
	ts.register(t, "ys-001", "ys-001-lock", schemas.KindLock)
	ts.stop(t)

	// ys-001-lock as registered before the registry kept broker hashes.
	db, err := bolt.Open(filepath.Join(data, "waystation.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("devices"))
		var v map[string]any
		if err := json.Unmarshal(b.Get([]byte("ys-001-lock")), &v); err != nil {
			return err
		}
		delete(v, "broker_hash")
		buf, _ := json.Marshal(v)
		return b.Put([]byte("ys-001-lock"), buf)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	pass := filepath.Join(dir, "ctl")
	os.WriteFile(pass, []byte("pw\n"), 0o600)
	passwd, acl, secrets := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl"),
		filepath.Join(dir, "secrets")
	args := []string{"broker", "export-auth", "--data", data, "--passwd", passwd, "--acl", acl,
		"--controller-password-file", pass}
	out, err := runCLI(args...)
	if err != nil || !strings.Contains(out, "left out 1 devices") {
		t.Fatalf("export-auth: %v\n%s", err, out)
	}
	raw, _ := os.ReadFile(passwd)
	if strings.Contains(string(raw), "ys-001-lock") || !strings.Contains(string(raw), "ys-001-ac:$7$") {
		t.Fatalf("password file:\n%s", raw)
	}

	out, err = runCLI(append(args, "--rotate-missing", secrets)...)
	if err != nil || !strings.Contains(out, "issued new secrets to 1 devices") {
		t.Fatalf("export-auth --rotate-missing: %v\n%s", err, out)
	}
	line, _ := os.ReadFile(secrets)
	id, secret, _ := strings.Cut(strings.TrimSpace(string(line)), ",")
	if id != "ys-001-lock" || secret == "" {
		t.Fatalf("secrets file %q", line)
	}
	aclText, _ := os.ReadFile(acl)
	for _, want := range []string{"user waystation.controller\ntopic readwrite waystation/v1/#",
		"user ys-001-lock\n", "topic write waystation/v1/ys-001/ys-001-lock/access/req",
		"topic read waystation/v1/ys-001/ys-001-lock/access/list"} {
		if !strings.Contains(string(aclText), want) {
			t.Fatalf("ACL lacks %q:\n%s", want, aclText)
		}
	}

	// Mosquitto takes the files as they are, and the new secret.
	m := mosquitto.Start(t, mosquitto.Config{PasswordFile: passwd, ACLFile: acl})
	if _, err := connectDevice(t, m.Addr, "ys-001", "ys-001-lock", secret, deviceOpts{}); err != nil {
		t.Fatalf("the rotated secret does not log in to mosquitto: %v", err)
	}

	// Both or neither: --data and --server.
	if out, err := runCLI("broker", "export-auth", "--passwd", passwd, "--acl", acl,
		"--controller-password-file", pass); err == nil {
		t.Fatalf("export-auth with no source: %s", out)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestPartitionsShareOneBroker: two controllers split the stations by the
// hash of their ids against one mosquitto; every station's messages are
// handled by exactly one of them, each serves only its own stations, and
// stations added at run time are followed at once.
func TestPartitionsShareOneBroker(t *testing.T) {
	requireMosquitto(t)
	r := startMosquittoForServe(t)
	servers := make([]*testServer, 2)
	for i := range servers {
		servers[i] = startServer(t, func(o *serveOptions) {
			r.serveOn(o)
			o.ext.partition = fmt.Sprintf("%d/2", i+1)
		})
	}
	const stations = 12
	owner := map[string]int{} // station → index in servers
	secrets := map[string]string{}
	for i := 1; i <= stations; i++ {
		st := fmt.Sprintf("ys-%03d", i)
		p := controller.StationPartition(st, 2) - 1
		owner[st] = p
		// The other controller refuses the station, saying whose it is.
		other := servers[1-p]
		var e controller.Error
		code := other.apiRaw(t, "POST", "/api/v1/stations", map[string]any{"id": st,
			"name": "x", "lat": 32.6, "lon": 116.3, "hours": "24h"}, &e)
		if code != 400 || !strings.Contains(e.Error, fmt.Sprintf("partition %d/2", p+1)) {
			t.Fatalf("station %s on the wrong partition: %d %q", st, code, e.Error)
		}
		secrets[st] = servers[p].register(t, st, st+"-ac", schemas.KindAC)
	}
	if n := len(owner); n != stations {
		t.Fatal(n)
	}
	count := [2]int{}
	for _, p := range owner {
		count[p]++
	}
	if count[0] == 0 || count[1] == 0 {
		t.Fatalf("the hash put every station on one side: %v", count)
	}
	r.exportAuth(t, servers...)
	published := alertsSeen(t, r)

	// Every device reports a fault: each station's alert must be raised
	// by its owner alone.
	for st := range owner {
		d := connectExternal(t, r, st, st+"-ac", secrets[st], deviceOpts{})
		d.publish(t, schemas.ChannelStatus, true, `{"online":true,"kind":"ac","conn":"c1"}`)
		d.publish(t, schemas.ChannelTelemetry, false, acFault(1, "E1"))
	}
	for st, p := range owner {
		eventually(t, 5*time.Second, "telemetry of "+st+" on its own partition", func() bool {
			v := servers[p].twinCLI(t, st+"-ac")
			return v.Twin != nil && v.Twin.Seq == 1 && v.Twin.Online
		})
		eventually(t, 5*time.Second, "the fault of "+st+" alerted by its owner", func() bool {
			return len(servers[p].firingAlerts(t, st+"-ac", controller.RuleACFault)) == 1
		})
		if l := servers[1-p].firingAlerts(t, st+"-ac", controller.RuleACFault); len(l) != 0 {
			t.Fatalf("%s alerted by the other partition too: %+v", st, l)
		}
		if code := servers[1-p].api(t, "GET", "/api/v1/devices/"+st+"-ac", nil, nil); code != 404 {
			t.Fatalf("%s-ac on the other partition: %d, want 404", st, code)
		}
		if code := servers[1-p].api(t, "GET", "/api/v1/stations/"+st, nil, nil); code != 404 {
			t.Fatalf("%s on the other partition: %d, want 404", st, code)
		}
	}
	// On the broker, each station's fault alert was published once.
	raised := map[string]int{}
	eventually(t, 5*time.Second, "every fault alert on the alert topics", func() bool {
		clear(raised)
		for _, a := range published() {
			if a.Alert.Rule == controller.RuleACFault && a.Type == controller.NoticeAlertRaised {
				raised[a.Alert.Station]++
			}
		}
		return len(raised) == stations
	})
	for st, n := range raised {
		if n != 1 {
			t.Fatalf("the fault alert of %s was published %d times", st, n)
		}
	}
	for i, ts := range servers {
		var list []devices.Station
		ts.api(t, "GET", "/api/v1/stations", nil, &list)
		if len(list) != count[i] {
			t.Fatalf("partition %d lists %d stations, owns %d", i+1, len(list), count[i])
		}
		// Exactly once: each handled its own devices' messages, and never
		// saw another's (those would count as unknown devices).
		ok := ts.metric(t, "waystation_messages_total", "channel", "telemetry", "result", "ok")
		unknown := ts.metric(t, "waystation_messages_total", "result", "unknown_device")
		if ok != float64(count[i]) || unknown != 0 {
			t.Fatalf("partition %d: telemetry ok %v (want %d), unknown-device messages %v",
				i+1, ok, count[i], unknown)
		}
		if subs := ts.metric(t, "waystation_mqtt_subscriptions"); subs != float64(5*count[i]) {
			t.Fatalf("partition %d holds %v filters, want 5 per station (%d)", i+1, subs,
				5*count[i])
		}
	}

	// Restarted on its data, a partition subscribes to the stations it
	// already has.
	data := servers[0].data
	servers[0].stop(t)
	ts := startServer(t, func(o *serveOptions) {
		r.serveOn(o)
		o.data = data
		o.ext.partition = "1/2"
	})
	for st, p := range owner {
		if p != 0 {
			continue
		}
		d := connectExternal(t, r, st, st+"-ac", secrets[st], deviceOpts{})
		d.publish(t, schemas.ChannelTelemetry, false, acTelemetry(2, 30))
		eventually(t, 5*time.Second, "telemetry of "+st+" after the restart", func() bool {
			return ts.twinCLI(t, st+"-ac").Twin.Seq == 2
		})
	}
}

// apiRaw is api that also decodes an error answer.
func (ts *testServer) apiRaw(t *testing.T, method, path string, in, out any) int {
	t.Helper()
	buf, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, ts.url+path, bytes.NewReader(buf))
	req.Header.Set("Authorization", "Bearer "+ts.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

// acFault is AC telemetry reporting a fault code.
func acFault(seq int, code string) string {
	return strings.Replace(acTelemetry(seq, 29), `"fault":""`, `"fault":"`+code+`"`, 1)
}

// firingAlerts returns the firing alerts of a rule on a device.
func (ts *testServer) firingAlerts(t *testing.T, device, rule string) []controller.Alert {
	t.Helper()
	var list []controller.Alert
	if code := ts.api(t, "GET", "/api/v1/alerts?state=firing&device="+device+"&rule="+rule,
		nil, &list); code != 200 {
		t.Fatalf("list alerts: %d", code)
	}
	return list
}

// alertsSeen subscribes to the alert topics on the broker, as a
// dispatcher's screen would, and collects the alerts published there.
func alertsSeen(t *testing.T, r *externalRig) func() []controller.AlertMessage {
	t.Helper()
	pass, err := readPasswordFile(r.pass, "pass")
	if err != nil {
		t.Fatal(err)
	}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(r.m.URL()).SetClientID("alert-watch").
		SetUsername(controllerUser).SetPassword(pass).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect alert watcher: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	var mu sync.Mutex
	var got []controller.AlertMessage
	tok := c.Subscribe(schemas.Prefix+schemas.AlertsStation+"/+", 1, func(_ mqtt.Client, m mqtt.Message) {
		var a controller.AlertMessage
		if err := json.Unmarshal(m.Payload(), &a); err == nil {
			mu.Lock()
			got = append(got, a)
			mu.Unlock()
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe to alerts: %v", tok.Error())
	}
	return func() []controller.AlertMessage {
		mu.Lock()
		defer mu.Unlock()
		return append([]controller.AlertMessage(nil), got...)
	}
}
