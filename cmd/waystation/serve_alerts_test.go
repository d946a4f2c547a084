package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/waystation/waystation/schemas"
)

// TestCleanStopUnderAlertsWarnsNot: a device flaps between a fault and
// none while the server stops; the stop logs no warning, and the alert
// messages the closed broker could not take are published at the next
// start.
func TestCleanStopUnderAlertsWarnsNot(t *testing.T) {
	data := t.TempDir()
	ts := startServer(t, func(o *serveOptions) { o.data = data })
	d := ts.online(t, "ys-001", "ys-001-ac", schemas.KindAC, "m1")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		topic := schemas.DeviceTopic("ys-001", "ys-001-ac", schemas.ChannelTelemetry)
		for i := 0; ; i++ {
			fault := ""
			if i%2 == 0 {
				fault = "E4"
			}
			tok := d.c.Publish(topic, 1, false, fmt.Sprintf(`{"power":true,"mode":"cool",`+
				`"setpoint_c":26,"room_c":27,"fault":%q,"seq":%d}`, fault, i+1))
			tok.WaitTimeout(time.Second)
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	eventually(t, 10*time.Second, "alerts raised and resolved", func() bool {
		return ts.metric(t, "waystation_alert_notices_total") >= 6
	})
	ts.stop(t)
	close(stop)
	wg.Wait()

	logs := ts.logs.String()
	for line := range strings.Lines(logs) {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("a clean stop logged: %s", line)
		}
	}
	if !strings.Contains(logs, "msg=stopped") {
		t.Fatalf("the server did not stop cleanly:\n%s", logs)
	}
	if !strings.Contains(logs, "kept to publish at the next start") {
		t.Logf("no alert message was left for the next start this time")
		return
	}
	ts2 := startServer(t, func(o *serveOptions) { o.data = data })
	eventually(t, 10*time.Second, "the kept alert messages published", func() bool {
		return strings.Contains(ts2.logs.String(), "published kept alert messages")
	})
}
