package broker

import "testing"

func TestPeerCanPublish(t *testing.T) {
	dev := peer{station: "st-1", device: "lock-1"}
	ctrl := peer{controller: true}
	cases := []struct {
		p      peer
		topic  string
		retain bool
		want   string
	}{
		{dev, "waystation/v1/st-1/lock-1/status", true, ""},
		{dev, "waystation/v1/st-1/lock-1/status", false, ""},
		{dev, "waystation/v1/st-1/lock-1/telemetry", false, ""},
		{dev, "waystation/v1/st-1/lock-1/event", false, ""},
		{dev, "waystation/v1/st-1/lock-1/cmd/result", false, ""},
		{dev, "waystation/v1/st-1/lock-1/access/req", false, ""},
		{dev, "waystation/v1/st-1/lock-1/telemetry", true, reasonRetained},
		{dev, "waystation/v1/st-1/lock-1/event", true, reasonRetained},
		{dev, "waystation/v1/st-1/lock-1/cmd", false, reasonChannel},
		{dev, "waystation/v1/st-1/lock-1/cmd", true, reasonRetainedCmd},
		{dev, "waystation/v1/st-1/lock-1/access/res", false, reasonChannel},
		{dev, "waystation/v1/st-1/lock-1/access/list", true, reasonChannel},
		{ctrl, "waystation/v1/st-1/lock-1/access/list", true, ""},
		{dev, "waystation/v1/st-1/lock-2/telemetry", false, reasonForeign},
		{dev, "waystation/v1/st-2/lock-1/telemetry", false, reasonForeign},
		{dev, "waystation/v1/st-1/lock-1/other", false, reasonTopic},
		{dev, "waystation/v1/st-1/lock-1/telemetry/x", false, reasonTopic},
		{dev, "waystation/v1/st-1/lock-1", false, reasonTopic},
		{dev, "waystation/v1/alerts/st-1", false, reasonTopic},
		{dev, "waystation/v2/st-1/lock-1/telemetry", false, reasonTopic},
		{dev, "", false, reasonTopic},
		{ctrl, "waystation/v1/st-1/lock-1/cmd", false, ""},
		{ctrl, "waystation/v1/st-1/lock-1/cmd", true, reasonRetainedCmd},
		{ctrl, "waystation/v2/a/b/cmd", true, reasonRetainedCmd},
		{ctrl, "waystation/v1/alerts/st-1", true, ""},
		{ctrl, "waystation/v1/st-1/lock-1/status", true, ""},
		{ctrl, "other/topic", false, reasonTopic},
		{ctrl, "$SYS/broker/uptime", false, reasonTopic},
	}
	for _, tc := range cases {
		if got := tc.p.canPublish(tc.topic, tc.retain); got != tc.want {
			t.Errorf("%+v publish %q retain %v: %q, want %q",
				tc.p, tc.topic, tc.retain, got, tc.want)
		}
	}
}

func TestPeerCanSubscribe(t *testing.T) {
	dev := peer{station: "st-1", device: "lock-1"}
	ctrl := peer{controller: true}
	cases := []struct {
		p      peer
		filter string
		want   string
	}{
		{dev, "waystation/v1/st-1/lock-1/cmd", ""},
		{dev, "waystation/v1/st-1/lock-1/access/res", ""},
		{dev, "waystation/v1/st-1/lock-1/access/list", ""},
		{dev, "waystation/v1/st-1/lock-2/access/list", reasonForeign},
		{dev, "waystation/v1/st-1/lock-1/status", reasonChannel},
		{dev, "waystation/v1/st-1/lock-1/access/req", reasonChannel},
		{dev, "waystation/v1/st-1/lock-1/cmd/result", reasonChannel},
		{dev, "waystation/v1/st-1/lock-2/cmd", reasonForeign},
		{dev, "waystation/v1/st-2/lock-1/cmd", reasonForeign},
		{dev, "waystation/v1/st-1/lock-1/#", reasonTopic},
		{dev, "waystation/v1/st-1/+/cmd", reasonTopic},
		{dev, "waystation/v1/+/lock-1/cmd", reasonTopic},
		{dev, "#", reasonTopic},
		{dev, "$share/g/waystation/v1/st-1/lock-1/cmd", reasonTopic},
		{ctrl, "waystation/#", ""},
		{ctrl, "waystation/v1/+/+/status", ""},
		{ctrl, "#", reasonTopic},
		{ctrl, "+/v1/#", reasonTopic},
		{ctrl, "$SYS/#", reasonTopic},
	}
	for _, tc := range cases {
		if got := tc.p.canSubscribe(tc.filter); got != tc.want {
			t.Errorf("%+v subscribe %q: %q, want %q", tc.p, tc.filter, got, tc.want)
		}
	}
}
