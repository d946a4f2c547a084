package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/schemas"
)

// TestServeKeepsHistory: telemetry a device sends is in its history through
// the API, and still there after a restart on the same data folder.
func TestServeKeepsHistory(t *testing.T) {
	ts := startServer(t, nil)
	secret := ts.register(t, "ys-001", "ys-001-ac", schemas.KindAC)
	d, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-ac", secret, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}
	// A second apart: the history keeps a device's last sample of a second.
	for i, room := range []float64{31, 29.5, 28} {
		d.publish(t, schemas.ChannelTelemetry, false, acTelemetry(i+1, room))
		receivedSecondApart(t, ts, "ys-001-ac", i+1)
	}
	rooms := func(ts *testServer) []float64 {
		var page controller.HistoryPage
		if code := ts.api(t, "GET", "/api/v1/devices/ys-001-ac/history", nil, &page); code != 200 {
			t.Fatalf("history: %d", code)
		}
		var out []float64
		for _, s := range page.Samples {
			var st schemas.ACState
			if err := json.Unmarshal(s.State, &st); err != nil {
				t.Fatal(err)
			}
			out = append(out, st.RoomC)
		}
		return out
	}
	eventually(t, 5*time.Second, "three samples in the history", func() bool {
		return len(rooms(ts)) == 3
	})
	if got := rooms(ts); got[0] != 31 || got[2] != 28 {
		t.Fatalf("rooms %v", got)
	}

	d.c.Disconnect(50)
	ts.stop(t)
	again := startServer(t, func(o *serveOptions) { o.data = ts.data })
	if got := rooms(again); len(got) != 3 || got[1] != 29.5 {
		t.Fatalf("after a restart: rooms %v", got)
	}
	if again.metric(t, "waystation_history_points_total") != 0 {
		t.Fatal("the restarted server wrote samples nobody sent")
	}
}

func TestServeHistoryFlags(t *testing.T) {
	for _, tc := range []struct {
		h    historyFlags
		want string
	}{
		{historyFlags{retention: time.Second}, "--history-retention 1s: want at least 1m"},
		{historyFlags{flush: time.Millisecond}, "--history-flush 1ms: want between 100ms and 1m"},
		{historyFlags{flush: time.Hour}, "--history-flush 1h0m0s: want between 100ms and 1m"},
	} {
		o := serveOptions{data: t.TempDir(), mqttAddr: ":0", httpAddr: ":0",
			maxPacketBytes: 64 << 10, history: tc.h}
		if err := o.check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.h, err, tc.want)
		}
	}
}

// receivedSecondApart waits until device's twin has message seq, then a
// second more: the next message is received at least a second after this
// one, so in another second of the clock, and the history keeps both.
func receivedSecondApart(t *testing.T, ts *testServer, device string, seq int) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("message %d in the twin", seq), func() bool {
		v := ts.twinCLI(t, device)
		return v.Twin != nil && v.Twin.Seq == uint64(seq)
	})
	time.Sleep(time.Second)
}
