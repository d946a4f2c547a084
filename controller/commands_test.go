package controller

import (
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

func TestCommandAcknowledgedAndLogged(t *testing.T) {
	r := newCmdRig(t, nil)
	r.sim(t, "ys-a-ac", nil)
	tap := r.tap(t)

	id := r.issue(t, "ys-a-ac", schemas.CmdACSet,
		map[string]any{"power": true, "mode": "cool", "setpoint_c": 24}, 0)
	rec := r.waitState(t, id, CommandAcknowledged)
	if rec.Attempts != 1 || rec.OK == nil || !*rec.OK || rec.Issuer != "operator:test" ||
		rec.Station != "ys-a" || rec.Kind != schemas.KindAC {
		t.Fatalf("record %+v", rec)
	}
	if want := r.clock.Now().Add(DefaultCommandTTL); !rec.ExpiresAt.Equal(want) {
		t.Fatalf("expires %v, want the default %v", rec.ExpiresAt, want)
	}
	waitUntil(t, 5*time.Second, "telemetry with the new setpoint", func() bool {
		st := r.acState(t, "ys-a-ac")
		return st.Power && st.Mode == "cool" && st.SetpointC == 24
	})

	sent := tap.all()
	if len(sent) != 1 || sent[0].cmd.ID != id || sent[0].cmd.ExpiresAt != rec.ExpiresAt.UnixMilli() {
		t.Fatalf("published %+v", sent)
	}
	if got := r.notes.types(id); !slices.Equal(got, []string{NoticeCommandSent,
		NoticeCommandAcknowledged}) {
		t.Fatalf("notices %v", got)
	}
	c := r.cmds()
	if n := testutil.ToFloat64(c.outcomes.WithLabelValues("ac.set", CommandAcknowledged)); n != 1 {
		t.Fatalf("acknowledged counted %v", n)
	}
	if n := testutil.CollectAndCount(c.roundTrip); n != 1 {
		t.Fatalf("round trip series %d", n)
	}

	// The log answers by id and by filter, and keeps it across a restart.
	r.stop()
	c = r.start(t)
	got, err := c.Get(id)
	if err != nil || got.State != CommandAcknowledged || got.Attempts != 1 {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	list, err := c.List(CommandFilter{Device: "ys-a-ac", State: CommandAcknowledged})
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("list %+v %v", list, err)
	}
	if list, _ := c.List(CommandFilter{Station: "ys-b"}); len(list) != 0 {
		t.Fatalf("ys-b has %+v", list)
	}
	if list, _ := c.List(CommandFilter{Since: r.clock.Now().Add(time.Second)}); len(list) != 0 {
		t.Fatalf("since the future: %+v", list)
	}
	if _, err := c.Get("c20250101-000000-000999"); !errors.Is(err, ErrCommandNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
}

func TestCommandRefusedBeforeSending(t *testing.T) {
	r := newCmdRig(t, nil)
	tap := r.tap(t)
	for _, c := range []struct {
		req  CommandRequest
		want string
	}{
		{CommandRequest{Device: "ys-a-ac", Name: "ac.set", Args: map[string]any{"setpoint_c": 40}},
			"setpoint_c"},
		{CommandRequest{Device: "ys-a-ac", Name: "ac.set", Args: map[string]any{"mode": "warm"}},
			"mode"},
		{CommandRequest{Device: "ys-a-ac", Name: "ac.set"}, "args"},
		{CommandRequest{Device: "ys-a-ac", Name: "lock.unlock"}, "for lock devices"},
		{CommandRequest{Device: "ys-a-lock", Name: "lock.mode", Args: map[string]any{"mode": "x"}},
			"mode"},
		{CommandRequest{Device: "ys-a-charger", Name: "charger.slot",
			Args: map[string]any{"slot": 0, "on": false}}, "slot"},
		{CommandRequest{Device: "ys-a-ac", Name: "ac.explode"}, "unknown command"},
		{CommandRequest{Device: "ys-a-ac", Name: "device.ping", TTL: 48 * time.Hour}, "expiry"},
		{CommandRequest{Device: "ys-a-ac", Name: "device.ping", TTL: time.Millisecond}, "expiry"},
	} {
		if c.req.Issuer == "" {
			c.req.Issuer = "operator:test"
		}
		_, err := r.cmds().IssueCommand(c.req)
		if !errors.Is(err, ErrInvalidCommand) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want invalid about %q", c.req, err, c.want)
		}
	}
	_, err := r.cmds().IssueCommand(CommandRequest{Device: "ys-zz", Name: "device.ping",
		Issuer: "x"})
	if !errors.Is(err, devices.ErrNotFound) {
		t.Errorf("unknown device: %v", err)
	}
	_, err = r.cmds().IssueCommand(CommandRequest{Device: "ys-a-ac", Name: "device.ping"})
	if !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("no issuer: %v", err)
	}
	if n := testutil.ToFloat64(r.cmds().outcomes.WithLabelValues("ac.set", "refused")); n != 3 {
		t.Errorf("refused ac.set counted %v", n)
	}
	if list, _ := r.cmds().List(CommandFilter{}); len(list) != 0 || len(tap.all()) != 0 {
		t.Errorf("refused commands left %+v, sent %+v", list, tap.all())
	}
}

// A lost answer: the command is sent again after RetryEvery, under its
// id, and the device answers from memory without carrying it out twice.
func TestCommandRetriedAndDeduplicated(t *testing.T) {
	r := newCmdRig(t, nil)
	d := r.sim(t, "ys-a-ac", nil)
	tap := r.tap(t)
	r.lose.Store(1)

	id := r.issue(t, "ys-a-ac", schemas.CmdACSet, map[string]any{"setpoint_c": 27}, time.Minute)
	waitUntil(t, 5*time.Second, "the first answer, lost", func() bool { return r.lose.Load() <= 0 })
	if rec, _ := r.cmds().Get(id); rec.State != CommandSent || rec.Attempts != 1 {
		t.Fatalf("after the lost answer: %+v", rec)
	}
	r.clock.Add(5 * time.Second)
	rec := r.waitState(t, id, CommandAcknowledged)
	if rec.Attempts != 2 {
		t.Fatalf("acknowledged after %d attempts", rec.Attempts)
	}
	st := d.Stats()
	if st.Executed != 1 || st.Repeated != 1 {
		t.Fatalf("device carried it out %d times, answered again %d times", st.Executed, st.Repeated)
	}
	sent := tap.all()
	if len(sent) != 2 || sent[0].cmd.ID != id || sent[1].cmd.ID != id {
		t.Fatalf("sent %+v", sent)
	}
}

// A sent command without an answer is sent again every RetryEvery of the
// injected clock while the device is online, and not after it expires.
func TestCommandRetriedOnTheClockUntilExpiry(t *testing.T) {
	r := newCmdRig(t, nil)
	// A device that takes commands and never answers: its twin is online
	// from a status the test publishes.
	dev := connectRaw(t, r, "ys-b-ac", true)
	dev.publish(t, "ys-b", schemas.ChannelStatus, true, `{"online":true,"kind":"ac","conn":"c1"}`)
	r.waitOnline(t, "ys-b-ac", true)
	tap := r.tap(t)

	id := r.issue(t, "ys-b-ac", schemas.CmdPing, nil, 20*time.Second)
	waitUntil(t, 5*time.Second, "first send", func() bool { return len(tap.all()) == 1 })
	for i := 2; i <= 4; i++ {
		r.clock.Add(5 * time.Second)
		waitUntil(t, 5*time.Second, "a retry", func() bool { return len(tap.all()) == i })
	}
	r.clock.Add(5 * time.Second) // at the expiry: expired, not sent
	rec := r.waitState(t, id, CommandExpired)
	r.clock.Add(time.Minute)
	time.Sleep(50 * time.Millisecond) // a few ticks: nothing more may go out
	sent := tap.all()
	if len(sent) != 4 || rec.Attempts != 4 {
		t.Fatalf("sent %d times, %d attempts recorded", len(sent), rec.Attempts)
	}
	for _, s := range sent {
		if !s.at.Before(rec.ExpiresAt) || s.cmd.ID != id {
			t.Fatalf("sent %+v at %v, expiry %v", s.cmd, s.at, rec.ExpiresAt)
		}
	}
	if got := r.notes.types(id); !slices.Equal(got, []string{NoticeCommandSent,
		NoticeCommandExpired}) {
		t.Fatalf("notices %v", got)
	}
}

// Commands queued while an AC is away go out in order when it is back, one
// at a time, and it ends in the state of the last.
func TestCommandsQueuedWhileAwayKeepTheirOrder(t *testing.T) {
	r := newCmdRig(t, nil)
	d := r.sim(t, "ys-a-ac", nil)
	tap := r.tap(t)

	if err := d.LinkDown(1500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	r.waitOnline(t, "ys-a-ac", false)
	ids := []string{
		r.issue(t, "ys-a-ac", schemas.CmdACSet, map[string]any{"power": true, "mode": "cool"},
			time.Hour),
		r.issue(t, "ys-a-ac", schemas.CmdACSet, map[string]any{"setpoint_c": 24}, time.Hour),
		r.issue(t, "ys-a-ac", schemas.CmdACSet, map[string]any{"power": false}, time.Hour),
	}
	for _, id := range ids {
		if rec, _ := r.cmds().Get(id); rec.State != CommandPending || rec.Attempts != 0 {
			t.Fatalf("while away: %+v", rec)
		}
	}
	if len(tap.all()) != 0 {
		t.Fatalf("sent to an offline device: %+v", tap.all())
	}

	var recs []CommandRecord
	for _, id := range ids {
		recs = append(recs, r.waitState(t, id, CommandAcknowledged))
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq <= recs[i-1].Seq || recs[i].FirstSent.Before(recs[i-1].Done) {
			t.Fatalf("out of order: %+v then %+v", recs[i-1], recs[i])
		}
	}
	var sentOrder []string
	for _, s := range tap.all() {
		if len(sentOrder) == 0 || sentOrder[len(sentOrder)-1] != s.cmd.ID {
			sentOrder = append(sentOrder, s.cmd.ID)
		}
	}
	if !slices.Equal(sentOrder, ids) {
		t.Fatalf("sent %v, want %v", sentOrder, ids)
	}
	waitUntil(t, 5*time.Second, "the last command's state", func() bool {
		st := r.acState(t, "ys-a-ac")
		return !st.Power && st.Mode == "cool" && st.SetpointC == 24
	})
}

// A command to a device that is away expires; it is never sent, and the
// device that comes back later never carries it out.
func TestCommandToOfflineDeviceExpires(t *testing.T) {
	r := newCmdRig(t, nil)
	d := r.sim(t, "ys-a-ac", nil)
	tap := r.tap(t)
	if err := d.LinkDown(time.Second); err != nil {
		t.Fatal(err)
	}
	r.waitOnline(t, "ys-a-ac", false)
	id := r.issue(t, "ys-a-ac", schemas.CmdACSet, map[string]any{"power": true}, time.Minute)
	r.clock.Add(time.Minute)
	rec := r.waitState(t, id, CommandExpired)
	if rec.Attempts != 0 || !rec.FirstSent.IsZero() {
		t.Fatalf("expired %+v", rec)
	}

	// The device sleeps out its second of dark on the rig's clock, and that
	// sleep may have begun after the minute above: move the clock on until
	// it is back.
	waitUntil(t, 10*time.Second, "ys-a-ac back online", func() bool {
		if tw, ok := r.twins.Get("ys-a-ac"); ok && tw.Online {
			return true
		}
		r.clock.Add(time.Second)
		return false
	})
	r.clock.Add(time.Second)
	time.Sleep(100 * time.Millisecond) // ticks after the device is back
	if n := len(tap.all()); n != 0 {
		t.Fatalf("sent %d times", n)
	}
	if st := d.Stats(); st.Executed != 0 {
		t.Fatalf("device carried out %d commands", st.Executed)
	}
	list, err := r.cmds().List(CommandFilter{State: CommandExpired})
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("expired list %+v %v", list, err)
	}
	if got := r.notes.types(id); !slices.Equal(got, []string{NoticeCommandExpired}) {
		t.Fatalf("notices %v", got)
	}
	if n := testutil.ToFloat64(r.cmds().outcomes.WithLabelValues("ac.set", CommandExpired)); n != 1 {
		t.Fatalf("expired counted %v", n)
	}
}

// A restart keeps the commands not yet answered: one that expired while
// the controller was down is expired, never sent; one still worth sending
// goes out when the device is back, under its first id.
func TestCommandsResumeAfterRestart(t *testing.T) {
	r := newCmdRig(t, nil)
	d := r.sim(t, "ys-a-ac", nil)
	tap := r.tap(t)
	if err := d.LinkDown(1500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	r.waitOnline(t, "ys-a-ac", false)
	short := r.issue(t, "ys-a-ac", schemas.CmdACSet, map[string]any{"setpoint_c": 30}, time.Minute)
	long := r.issue(t, "ys-a-ac", schemas.CmdACSet, map[string]any{"setpoint_c": 25},
		10*time.Minute)

	r.stop()
	r.clock.Add(2 * time.Minute)
	r.start(t)
	a := r.waitState(t, short, CommandExpired)
	b := r.waitState(t, long, CommandAcknowledged)
	if a.Attempts != 0 || b.Attempts != 1 {
		t.Fatalf("expired %+v, acknowledged %+v", a, b)
	}
	for _, s := range tap.all() {
		if s.cmd.ID != long {
			t.Fatalf("sent %+v", s.cmd)
		}
	}
	waitUntil(t, 5*time.Second, "setpoint 25", func() bool {
		return r.acState(t, "ys-a-ac").SetpointC == 25
	})
	// New ids go on after the old ones.
	next := r.issue(t, "ys-a-ac", schemas.CmdPing, nil, 0)
	if seqOfID(next) <= seqOfID(long) {
		t.Fatalf("id %s after %s", next, long)
	}
}

// A command sent and unanswered when the controller stops is sent again,
// with its id, after the restart; the device carries it out once.
func TestCommandSentBeforeRestartIsSentAgain(t *testing.T) {
	r := newCmdRig(t, nil)
	d := r.sim(t, "ys-a-ac", nil)
	r.lose.Store(1)
	id := r.issue(t, "ys-a-ac", schemas.CmdACSet, map[string]any{"fan": "high"}, time.Minute)
	waitUntil(t, 5*time.Second, "the first answer, lost", func() bool { return r.lose.Load() <= 0 })
	r.stop()
	r.start(t)
	// The device is online: the restarted controller sends it again at
	// the next retry, without waiting for the device to come back.
	r.clock.Add(5 * time.Second)
	rec := r.waitState(t, id, CommandAcknowledged)
	if rec.Attempts != 2 {
		t.Fatalf("attempts %d", rec.Attempts)
	}
	if st := d.Stats(); st.Executed != 1 || st.Repeated != 1 {
		t.Fatalf("device stats %+v", st)
	}
}

// What the broker does with a command for a device with a persistent
// session (clean session off) whose twin still says online:
//
//   - the device said goodbye (no will): the broker forgets its identity
//     and refuses to deliver to it, so nothing waits in the session and
//     nothing arrives when it comes back;
//   - the link died while the command was on its way, unacknowledged: mochi
//     keeps it in the session and delivers it again when the device comes
//     back, however old. A device must then drop it by its expires_at, as
//     the contract says (the simulators do); the platform itself never
//     sends after the expiry.
func TestCommandsAndPersistentSessions(t *testing.T) {
	r := newCmdRig(t, nil)
	tap := r.tap(t)

	// Goodbye, then a command.
	dev := connectRaw(t, r, "ys-b-ac", false)
	dev.publish(t, "ys-b", schemas.ChannelStatus, true, `{"online":true,"kind":"ac","conn":"p1"}`)
	r.waitOnline(t, "ys-b-ac", true)
	dev.c.Disconnect(0)
	r.waitClients(t, 0)
	id := r.issue(t, "ys-b-ac", schemas.CmdACSet, map[string]any{"power": false}, time.Minute)
	r.waitState(t, id, CommandSent)
	r.clock.Add(time.Minute)
	rec := r.waitState(t, id, CommandExpired)
	back := connectRaw(t, r, "ys-b-ac", false)
	select {
	case c := <-back.cmds:
		t.Fatalf("broker kept %+v for a device that said goodbye", c)
	case <-time.After(300 * time.Millisecond):
	}
	if sent := tap.all(); len(sent) != 1 || !sent[0].at.Before(rec.ExpiresAt) {
		t.Fatalf("platform sent %+v", sent)
	}
	back.c.Disconnect(0)
	r.waitClients(t, 0)

	// The link dies with the command unacknowledged.
	cut := connectCuttable(t, r, "ys-b-ac")
	id = r.issue(t, "ys-b-ac", schemas.CmdACSet, map[string]any{"power": true}, time.Minute)
	select {
	case <-cut.got:
	case <-time.After(5 * time.Second):
		t.Fatal("the command never reached the device")
	}
	r.clock.Add(time.Minute)
	rec = r.waitState(t, id, CommandExpired)
	back = connectRaw(t, r, "ys-b-ac", false)
	late := back.next(t)
	if late.ID != id || late.ExpiresAt != rec.ExpiresAt.UnixMilli() ||
		late.ExpiresAt > r.clock.Now().UnixMilli() {
		t.Fatalf("broker delivered %+v, expiry %v, now %v", late, rec.ExpiresAt, r.clock.Now())
	}
	sent := tap.all()
	if len(sent) != 2 || sent[1].cmd.ID != id || !sent[1].at.Before(rec.ExpiresAt) {
		t.Fatalf("platform sent %+v", sent)
	}
}

// cuttable is a device with a persistent session whose network connection
// the test closes when the first command arrives, before acknowledging it.
type cuttable struct {
	got chan struct{}
}

func connectCuttable(t testing.TB, r *cmdRig, id string) *cuttable {
	t.Helper()
	d, err := r.reg.Device(id)
	if err != nil {
		t.Fatal(err)
	}
	c := &cuttable{got: make(chan struct{})}
	var conn atomic.Pointer[net.Conn]
	var once sync.Once
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + r.broker.TCPAddr()).SetClientID(id).
		SetUsername(id).SetPassword(r.secrets[id]).SetAutoReconnect(false).
		SetCleanSession(false).SetConnectTimeout(5 * time.Second).
		SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			nc, err := net.Dial("tcp", u.Host)
			if err == nil {
				conn.Store(&nc)
			}
			return nc, err
		})
	cl := mqtt.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(0) })
	topic := schemas.DeviceTopic(d.Station, id, schemas.ChannelCmd)
	tok := cl.Subscribe(topic, 1, func(mqtt.Client, mqtt.Message) {
		once.Do(func() {
			(*conn.Load()).Close() // before paho acknowledges
			close(c.got)
		})
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	return c
}
