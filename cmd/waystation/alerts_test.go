package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/schemas"
)

// TestAlertsCLI: an AED cabinet opened (mosquitto_pub) is the alert the
// CLI lists, acknowledges and resolves; silences are added, listed and
// removed; the alert gauge counts it.
func TestAlertsCLI(t *testing.T) {
	requireMosquitto(t)
	ts := startServer(t, nil)
	secret := ts.register(t, "ys-001", "ys-001-aed", schemas.KindAED)
	cli := func(args ...string) string {
		t.Helper()
		out, err := runCLI(append(args, "--server", ts.url, "--token", ts.token)...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	mosquittoPub(t, ts.mqtt, "ys-001-aed", secret,
		schemas.DeviceTopic("ys-001", "ys-001-aed", schemas.ChannelEvent), `{"type":"cabinet_opened"}`)

	var list []controller.Alert
	eventually(t, 5*time.Second, "the cabinet alert is listed", func() bool {
		list = nil
		json.Unmarshal([]byte(cli("alerts", "list", "--state", "firing", "-o", "json")), &list)
		return len(list) == 1
	})
	a := list[0]
	if a.Rule != controller.RuleAEDOpened || a.Severity != controller.SeverityCritical ||
		!strings.Contains(a.Summary, "AED taken") || a.Station != "ys-001" {
		t.Fatalf("alert %+v", a)
	}
	if out := cli("alerts", "list"); !strings.Contains(out, "aed.cabinet_opened") ||
		!strings.Contains(out, "SEVERITY") || !strings.Contains(out, "critical") {
		t.Fatalf("table:\n%s", out)
	}
	if got := ts.metric(t, "waystation_alerts", "severity", "critical", "state", "firing"); got != 1 {
		t.Fatalf("waystation_alerts critical firing = %v", got)
	}

	if out := cli("alerts", "ack", a.ID, "--note", "ambulance called"); !strings.Contains(out, "acknowledged") {
		t.Fatalf("ack: %s", out)
	}
	list = nil
	json.Unmarshal([]byte(cli("alerts", "list", "--state", "acknowledged", "-o", "json")), &list)
	if len(list) != 1 || list[0].AckNote != "ambulance called" || list[0].AckedBy == "" {
		t.Fatalf("acknowledged: %+v", list)
	}
	if out, err := runCLI("alerts", "ack", a.ID, "--server", ts.url, "--token", ts.token); err == nil ||
		!strings.Contains(err.Error(), "already acknowledged") {
		t.Fatalf("second ack: %v %s", err, out)
	}
	if out := cli("alerts", "resolve", a.ID); !strings.Contains(out, "resolved") {
		t.Fatalf("resolve: %s", out)
	}
	if _, err := runCLI("alerts", "list", "--state", "burning", "--server", ts.url, "--token",
		ts.token); err == nil || !strings.Contains(err.Error(), "firing") {
		t.Fatalf("bad state: %v", err)
	}

	out := cli("silence", "add", "--station", "ys-001", "--for", "2h", "--reason", "pads replaced")
	if !strings.Contains(out, "station ys-001") {
		t.Fatalf("silence add: %s", out)
	}
	var sl []controller.Silence
	json.Unmarshal([]byte(cli("silence", "list", "-o", "json")), &sl)
	if len(sl) != 1 || sl[0].Reason != "pads replaced" || sl[0].CreatedBy == "" {
		t.Fatalf("silences %+v", sl)
	}
	if out := cli("silence", "list"); !strings.Contains(out, "pads replaced") {
		t.Fatalf("silence list:\n%s", out)
	}
	if _, err := runCLI("silence", "add", "--station", "ys-001", "--for", "2h", "--server", ts.url,
		"--token", ts.token); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("silence without a reason: %v", err)
	}
	cli("silence", "remove", sl[0].ID)
	if out := cli("silence", "list"); !strings.Contains(out, "no silences") {
		t.Fatalf("after remove:\n%s", out)
	}
}

func TestServeRefusesBadAlertFlags(t *testing.T) {
	for _, flag := range []string{"--alert-grace", "--alert-escalate-after", "--alert-station-window"} {
		_, err := runCLI("serve", "--data", t.TempDir(), "--mqtt", "127.0.0.1:0", "--http",
			"127.0.0.1:0", "--ws", "", flag, "-1m")
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s -1m: %v", flag, err)
		}
	}
}

// TestAlertOverheatSwitchesSlotOff: in the whole server, a charger slot at
// 65 °C raises a critical alert and the platform switches the slot off
// through the command log: the cabinet receives charger.slot, and the
// command is listed with the rule as its issuer.
func TestAlertOverheatSwitchesSlotOff(t *testing.T) {
	ts := startServer(t, nil)
	secret := ts.register(t, "ys-001", "ys-001-chg", schemas.KindCharger)
	d, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-chg", secret, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}
	cmds := make(chan []byte, 8)
	tok := d.c.Subscribe(schemas.DeviceTopic("ys-001", "ys-001-chg", schemas.ChannelCmd), 1,
		func(_ mqttClient, m mqttMessage) { cmds <- m.Payload() })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	d.publish(t, schemas.ChannelStatus, true, `{"online":true,"kind":"charger","conn":"c1"}`)
	d.publish(t, schemas.ChannelTelemetry, false, `{"slots":[{"slot":1,"state":"full","temp_c":30},`+
		`{"slot":2,"state":"charging","temp_c":65}],"smoke":false,"mains":true}`)

	select {
	case p := <-cmds:
		cmd, err := schemas.DecodeCommand(p)
		if err != nil {
			t.Fatal(err)
		}
		slot, _ := cmd.ArgInt("slot")
		on, _ := cmd.ArgBool("on")
		if cmd.Name != schemas.CmdChargerSlot || slot != 2 || on {
			t.Fatalf("command %+v", cmd)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cabinet got no command")
	}
	var recs []controller.CommandRecord
	if code := ts.api(t, "GET", "/api/v1/commands?device=ys-001-chg", nil, &recs); code != 200 ||
		len(recs) != 1 || recs[0].Issuer != "rule:"+controller.RuleSlotOverheat ||
		!strings.Contains(recs[0].Reason, "65.0 °C") {
		t.Fatalf("command log: %d %+v", code, recs)
	}
	var alerts []controller.Alert
	ts.api(t, "GET", "/api/v1/alerts?severity=critical", nil, &alerts)
	if len(alerts) != 1 || alerts[0].Rule != controller.RuleSlotOverheat || alerts[0].Subject != "2" {
		t.Fatalf("alerts %+v", alerts)
	}
	if got := ts.metric(t, "waystation_alert_commands_total", "result", "ok"); got != 1 {
		t.Fatalf("commands counted %v", got)
	}
}
