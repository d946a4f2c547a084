package controller

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/waystation/waystation/schemas"
)

// TestAccessDecisions walks every reason an access request can get, with
// real credentials, rules and station hours, on a fake clock.
func TestAccessDecisions(t *testing.T) {
	r := newAccessRig(t, rigOptions{access: func(o *AccessOptions) { o.Burst = 1000 }})
	tokA, _ := r.issue(t, "org-a")
	tokFace, _ := r.issue(t, "org-a", "face")
	tokB, _ := r.issue(t, "org-b")
	tokGone, gone := r.issue(t, "org-a")
	if _, err := r.creds.Revoke(gone.ID); err != nil {
		t.Fatal(err)
	}
	noon := time.Date(2025, 7, 15, 12, 0, 0, 0, shanghai)
	late := time.Date(2025, 7, 15, 23, 30, 0, 0, shanghai)
	dawn := time.Date(2025, 7, 16, 5, 59, 0, 0, shanghai)
	six := time.Date(2025, 7, 16, 6, 0, 0, 0, shanghai)
	lockMode := func(device, mode string) func() {
		return func() {
			r.access.Observe(Observation{Device: r.device(t, device),
				Channel: schemas.ChannelTelemetry, Telem: &schemas.Telemetry{Kind: schemas.KindLock, Lock: &schemas.LockState{
					Door: "closed", Bolt: "locked", Mode: mode}}})
		}
	}
	rules := func(station string, u RulesUpdate) func() {
		return func() {
			st, _ := r.reg.Station(station)
			if _, err := r.rules.Update(station, st.Org, u); err != nil {
				t.Fatal(err)
			}
		}
	}
	yes, no := true, false

	for _, tc := range []struct {
		name   string
		setup  func()
		lock   string
		token  string
		method string
		at     time.Time
		want   string
	}{
		{"granted", nil, "ys-a-lock", tokA, "face", noon, ReasonGranted},
		{"unknown token", nil, "ys-a-lock", "wsc_never-issued-token", "face", noon, ReasonUnknown},
		{"revoked", nil, "ys-a-lock", tokGone, "nfc", noon, ReasonRevoked},
		{"other organisation", nil, "ys-a-lock", tokB, "qr", noon, ReasonOtherOrg},
		{"station open to all", rules("ys-a", RulesUpdate{OpenToAll: &yes}), "ys-a-lock", tokB, "qr",
			noon, ReasonGranted},
		{"closed to others again", rules("ys-a", RulesUpdate{OpenToAll: &no}), "ys-a-lock", tokB,
			"qr", noon, ReasonOtherOrg},
		{"station of no organisation admits all", nil, "ys-n-lock", tokB, "nfc", late,
			ReasonGranted},
		{"method the station refuses", rules("ys-a", RulesUpdate{Methods: []string{"nfc"}}),
			"ys-a-lock", tokA, "face", noon, ReasonMethod},
		{"method the station accepts", nil, "ys-a-lock", tokA, "nfc", noon, ReasonGranted},
		{"method the credential refuses", rules("ys-a", RulesUpdate{Methods: AccessMethods}),
			"ys-a-lock", tokFace, "nfc", noon, ReasonMethod},
		{"method the credential accepts", nil, "ys-a-lock", tokFace, "face", noon, ReasonGranted},
		{"lockdown", lockMode("ys-a-lock", schemas.LockLockdown), "ys-a-lock", tokA, "face", noon,
			ReasonLockdown},
		{"lockdown over", lockMode("ys-a-lock", schemas.LockNormal), "ys-a-lock", tokA, "face",
			noon, ReasonGranted},
		{"lockdown of another terminal", lockMode("ys-b-lock", schemas.LockLockdown), "ys-a-lock",
			tokA, "face", noon, ReasonGranted},
		{"closed after hours", lockMode("ys-b-lock", schemas.LockNormal), "ys-b-lock", tokB, "face",
			late, ReasonClosed},
		{"closed a minute before opening", nil, "ys-b-lock", tokB, "face", dawn, ReasonClosed},
		{"open at opening time", nil, "ys-b-lock", tokB, "face", six, ReasonGranted},
		{"night station open past midnight", nil, "ys-n-lock", tokA, "face", dawn, ReasonGranted},
		{"night station closed at noon", nil, "ys-n-lock", tokA, "face", noon, ReasonClosed},
		// A request in UTC is judged in the stations' zone: 15:30 UTC is
		// 23:30 in Shanghai.
		{"hours read in the station's zone", nil, "ys-b-lock", tokB, "face", late.UTC(),
			ReasonClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			req := schemas.AccessRequest{ID: "r1", Method: tc.method, Token: tc.token}
			got := r.access.Decide(r.device(t, tc.lock), req, tc.at)
			if got.Reason != tc.want || got.Granted != (tc.want == ReasonGranted) {
				t.Fatalf("got %+v, want %s", got, tc.want)
			}
			if got.Granted != (got.UnlockS == DefaultUnlockS) {
				t.Fatalf("unlock %d", got.UnlockS)
			}
		})
	}
}

// TestAccessThrottle: a terminal that asks faster than its rate is
// answered throttled and counted; another terminal is not held up, and the
// bucket refills with time.
func TestAccessThrottle(t *testing.T) {
	r := newAccessRig(t, rigOptions{access: func(o *AccessOptions) { o.RatePerS, o.Burst = 2, 3 }})
	tok, _ := r.issue(t, "org-a")
	ask := func(lock string) string {
		obs := Observation{Device: r.device(t, lock), Channel: schemas.ChannelAccessReq,
			At: r.clock.Now(), Access: &schemas.AccessRequest{ID: "r", Method: "nfc", Token: tok}}
		return r.access.Decide(obs.Device, *obs.Access, obs.At).Reason
	}
	for i := range 3 {
		if got := ask("ys-a-lock"); got != ReasonGranted {
			t.Fatalf("request %d within the burst: %s", i, got)
		}
	}
	if got := ask("ys-a-lock"); got != ReasonThrottled {
		t.Fatalf("past the burst: %s", got)
	}
	if got := ask("ys-n-lock"); got == ReasonThrottled {
		t.Fatal("another terminal was throttled")
	}
	r.clock.Add(499 * time.Millisecond) // 0.998 of a token
	if got := ask("ys-a-lock"); got != ReasonThrottled {
		t.Fatalf("before a token refilled: %s", got)
	}
	r.clock.Add(2 * time.Millisecond)
	if got := ask("ys-a-lock"); got != ReasonGranted {
		t.Fatalf("after a token refilled: %s", got)
	}

	// Through the broker, the refusals are counted.
	before := testutil.ToFloat64(r.access.decisions.WithLabelValues(ReasonThrottled))
	lock := connectLock(t, r, "ys-a-lock")
	for i := range 5 {
		lock.ask(t, fmt.Sprintf("q%d", i), "nfc", tok)
	}
	got := map[string]int{}
	for range 5 {
		got[lock.answer(t).Reason]++
	}
	if got[ReasonThrottled] != 5 {
		t.Fatalf("answers %v, want 5 throttled (the bucket is empty at this instant)", got)
	}
	if n := testutil.ToFloat64(r.access.decisions.WithLabelValues(ReasonThrottled)); n != before+5 {
		t.Fatalf("throttled counted %v, want %v", n, before+5)
	}
}

// TestAccessOverMQTT: a door terminal (a paho client logged in as the
// lock) asks on access/req and gets its answer on access/res, QoS 1 and
// not retained, with the request's id; every answer is counted.
func TestAccessOverMQTT(t *testing.T) {
	r := newAccessRig(t, rigOptions{})
	tok, _ := r.issue(t, "org-a")
	lock := connectLock(t, r, "ys-a-lock")

	lock.ask(t, "req-1", "face", tok)
	res := lock.answer(t)
	if res.ID != "req-1" || !res.Granted || res.Reason != ReasonGranted || res.UnlockS != 5 ||
		res.TS != r.clock.Now().UnixMilli() {
		t.Fatalf("answer %+v", res)
	}
	if lock.last.Qos() != 1 || lock.last.Retained() {
		t.Fatalf("answer qos %d retained %v", lock.last.Qos(), lock.last.Retained())
	}

	lock.ask(t, "req-2", "qr", "wsc_nobody-has-this")
	if res := lock.answer(t); res.ID != "req-2" || res.Granted || res.Reason != ReasonUnknown ||
		res.UnlockS != 0 {
		t.Fatalf("answer %+v", res)
	}
	counted := map[string]float64{ReasonGranted: 1, ReasonUnknown: 1, ReasonRevoked: 0}
	for reason, want := range counted {
		if got := testutil.ToFloat64(r.access.decisions.WithLabelValues(reason)); got != want {
			t.Errorf("%s counted %v, want %v", reason, got, want)
		}
	}

	// Another terminal never sees this one's answers.
	other := connectLock(t, r, "ys-b-lock")
	lock.ask(t, "req-3", "face", tok)
	lock.answer(t)
	select {
	case m := <-other.answers:
		t.Fatalf("ys-b-lock received %s", m.Payload())
	case <-time.After(100 * time.Millisecond):
	}
}

// lockClient is a paho client logged in as a door terminal.
type lockClient struct {
	c       mqtt.Client
	station string
	id      string
	answers chan mqtt.Message
	last    mqtt.Message
}

func connectLock(t testing.TB, r *accessRig, id string) *lockClient {
	t.Helper()
	d := r.device(t, id)
	l := &lockClient{station: d.Station, id: id, answers: make(chan mqtt.Message, 4096)}
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + r.broker.TCPAddr()).SetClientID(id).
		SetUsername(id).SetPassword(r.secrets[id]).SetAutoReconnect(false).
		SetCleanSession(true).SetConnectTimeout(5 * time.Second).SetOrderMatters(false)
	l.c = mqtt.NewClient(opts)
	if tok := l.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { l.c.Disconnect(50) })
	topic := schemas.DeviceTopic(d.Station, id, schemas.ChannelAccessRes)
	tok := l.c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { l.answers <- m })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	return l
}

func (l *lockClient) ask(t testing.TB, id, method, token string) {
	t.Helper()
	buf, _ := json.Marshal(schemas.AccessRequest{ID: id, Method: method, Token: token})
	tok := l.c.Publish(schemas.DeviceTopic(l.station, l.id, schemas.ChannelAccessReq), 1, false, buf)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

func (l *lockClient) answer(t testing.TB) schemas.AccessResponse {
	t.Helper()
	select {
	case m := <-l.answers:
		l.last = m
		res, err := schemas.DecodeAccessResponse(m.Payload())
		if err != nil {
			t.Fatalf("answer %s breaks the contract: %v", m.Payload(), err)
		}
		return res
	case <-time.After(5 * time.Second):
		t.Fatal("no answer on access/res")
	}
	return schemas.AccessResponse{}
}

// TestAccessRepeatedRequestCountsOnce: a request sent again with the same id
// (a QoS 1 resend, a retry after a lost answer) gets the same answer and is
// counted once, as a decision and as a visit.
func TestAccessRepeatedRequestCountsOnce(t *testing.T) {
	r := newAccessRig(t, rigOptions{})
	tok, _ := r.issue(t, "org-a")
	lock := connectLock(t, r, "ys-a-lock")

	for range 3 {
		lock.ask(t, "req-same", "qr", tok)
		if res := lock.answer(t); res.ID != "req-same" || !res.Granted {
			t.Fatalf("answer %+v", res)
		}
	}
	if got := testutil.ToFloat64(r.access.decisions.WithLabelValues(ReasonGranted)); got != 1 {
		t.Fatalf("granted counted %v times, want once", got)
	}
	lock.ask(t, "req-next", "qr", tok)
	lock.answer(t)
	if got := testutil.ToFloat64(r.access.decisions.WithLabelValues(ReasonGranted)); got != 2 {
		t.Fatalf("a new request id counted %v, want 2 in all", got)
	}
}

// TestEmptyMethodsRefused: an empty list of methods is an error, not "all".
func TestEmptyMethodsRefused(t *testing.T) {
	if _, err := checkMethods([]string{}); err == nil {
		t.Fatal("empty methods accepted")
	}
	if all, err := checkMethods(nil); err != nil || len(all) != 3 {
		t.Fatalf("methods left out: %v %v", all, err)
	}
	r := newAccessRig(t, rigOptions{})
	if _, err := r.rules.Update("ys-a", "org-a", RulesUpdate{Methods: []string{}}); err == nil {
		t.Fatal("a station's methods were set to an empty list")
	}
}
