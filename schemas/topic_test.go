package schemas

import (
	"errors"
	"strings"
	"testing"
)

var (
	id32 = "a" + strings.Repeat("0-", 15) + "z" // 32 characters, the longest id
	id33 = id32 + "x"
)

var topicTests = []struct {
	topic string
	want  Topic // zero when invalid
}{
	{"waystation/v1/ys-001/ac-1/status", Topic{"ys-001", "ac-1", ChannelStatus}},
	{"waystation/v1/ys-001/ac-1/telemetry", Topic{"ys-001", "ac-1", ChannelTelemetry}},
	{"waystation/v1/ys-001/lock-1/event", Topic{"ys-001", "lock-1", ChannelEvent}},
	{"waystation/v1/ys-001/ac-1/cmd", Topic{"ys-001", "ac-1", ChannelCmd}},
	{"waystation/v1/ys-001/ac-1/cmd/result", Topic{"ys-001", "ac-1", ChannelCmdResult}},
	{"waystation/v1/s/lock-1/access/req", Topic{"s", "lock-1", ChannelAccessReq}},
	{"waystation/v1/s/lock-1/access/res", Topic{"s", "lock-1", ChannelAccessRes}},
	{"waystation/v1/s/lock-1/access/list", Topic{"s", "lock-1", ChannelAccessList}},
	{"waystation/v1/s/lock-1/access/list/x", Topic{}},
	{"waystation/v1/0/9/status", Topic{"0", "9", ChannelStatus}},
	{"waystation/v1/" + id32 + "/" + id32 + "/status", Topic{id32, id32, ChannelStatus}},
	{"waystation/v1/s-/d--/status", Topic{"s-", "d--", ChannelStatus}},
	// "alerts" is reserved as a station, not as a device.
	{"waystation/v1/ys-001/alerts/event", Topic{"ys-001", "alerts", ChannelEvent}},
	{"waystation/v1/alerts/ys-001/status", Topic{}},
	{"waystation/v1/alerts/ys-001", Topic{}},
	{"waystation/v1/" + id33 + "/d/status", Topic{}},
	{"waystation/v1/s/" + id33 + "/status", Topic{}},
	{"waystation/v1//d/status", Topic{}},
	{"waystation/v1/s//status", Topic{}},
	{"waystation/v1/-s/d/status", Topic{}},
	{"waystation/v1/s/-d/status", Topic{}},
	{"waystation/v1/YS-001/d/status", Topic{}},
	{"waystation/v1/s/D/status", Topic{}},
	{"waystation/v1/s_1/d/status", Topic{}},
	{"waystation/v1/s/d/Status", Topic{}},
	{"waystation/v1/s/d/", Topic{}},
	{"waystation/v1/s/d", Topic{}},
	{"waystation/v1/s", Topic{}},
	{"waystation/v1/", Topic{}},
	{"", Topic{}},
	{"waystation/v1/s/d/cmd/", Topic{}},
	{"waystation/v1/s/d/cmd/result/x", Topic{}},
	{"waystation/v1/s/d/access", Topic{}},
	{"waystation/v1/s/d/status/", Topic{}},
	{"/waystation/v1/s/d/status", Topic{}},
	{"waystation/v2/s/d/status", Topic{}},
	{"Waystation/v1/s/d/status", Topic{}},
	{"waystation/v1/+/d/status", Topic{}},
	{"waystation/v1/s/#", Topic{}},
	{"waystation/v1/s/d/status\x00", Topic{}},
	{"waystation/v1/s/dé/status", Topic{}},
}

func TestParseTopic(t *testing.T) {
	for _, tc := range topicTests {
		got, err := ParseTopic(tc.topic)
		if tc.want == (Topic{}) {
			if !errors.Is(err, ErrTopic) {
				t.Errorf("ParseTopic(%q) = %+v, %v; want ErrTopic", tc.topic, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseTopic(%q) = %+v, %v; want %+v", tc.topic, got, err, tc.want)
			continue
		}
		if got.String() != tc.topic {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), tc.topic)
		}
		if s := DeviceTopic(got.Station, got.Device, got.Channel); s != tc.topic {
			t.Errorf("DeviceTopic = %q, want %q", s, tc.topic)
		}
		if !strings.HasPrefix(tc.topic, DevicePrefix(got.Station, got.Device)) {
			t.Errorf("%q lacks its device prefix %q", tc.topic, DevicePrefix(got.Station, got.Device))
		}
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"a": true, "0": true, "ys-001": true, id32: true, "a-": true,
		"": false, id33: false, "-a": false, "A": false, "a_b": false, "a.b": false,
		"a b": false, "a/b": false, "+": false, "#": false, "é": false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestTopicHelpers(t *testing.T) {
	if got := AlertTopic("ys-001"); got != "waystation/v1/alerts/ys-001" {
		t.Errorf("AlertTopic = %q", got)
	}
	if _, err := ParseTopic(AlertTopic("ys-001")); !errors.Is(err, ErrTopic) {
		t.Errorf("an alert topic parses as a device topic: %v", err)
	}
	if got := DeviceFilter(ChannelCmdResult); got != "waystation/v1/+/+/cmd/result" {
		t.Errorf("DeviceFilter = %q", got)
	}

	from := map[Channel]bool{
		ChannelStatus: true, ChannelTelemetry: true, ChannelEvent: true, ChannelCmdResult: true,
		ChannelAccessReq: true, ChannelCmd: false, ChannelAccessRes: false, ChannelAccessList: false,
	}
	if len(from) != len(Channels) {
		t.Fatalf("table covers %d channels of %d", len(from), len(Channels))
	}
	for _, ch := range Channels {
		if !ch.Valid() || ch.FromDevice() != from[ch] {
			t.Errorf("%s: Valid %v, FromDevice %v", ch, ch.Valid(), ch.FromDevice())
		}
	}
	if Channel("cmd/").Valid() || Channel("").Valid() || Channel("alerts").Valid() {
		t.Error("a channel outside the contract is valid")
	}
	for _, k := range Kinds {
		if !k.Valid() {
			t.Errorf("kind %q not valid", k)
		}
	}
	if Kind("AC").Valid() || Kind("").Valid() {
		t.Error("a kind outside the contract is valid")
	}
}

func TestParseTopicClipsLongInput(t *testing.T) {
	_, err := ParseTopic("x" + strings.Repeat("y", 10000))
	if err == nil || len(err.Error()) > 300 {
		t.Fatalf("error of %d bytes", len(err.Error()))
	}
}
