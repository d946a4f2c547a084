package controller

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// listsOf subscribes l to its allow-list topic and returns the lists it
// receives, with whether each came as a retained message.
func (l *lockClient) listsOf(t testing.TB) <-chan receivedList {
	t.Helper()
	ch := make(chan receivedList, 64)
	topic := schemas.DeviceTopic(l.station, l.id, schemas.ChannelAccessList)
	tok := l.c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		al, err := schemas.DecodeAccessList(m.Payload())
		if err != nil {
			t.Errorf("allow-list %s breaks the contract: %v", m.Payload(), err)
			return
		}
		ch <- receivedList{al, m.Retained()}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	return ch
}

type receivedList struct {
	schemas.AccessList
	retained bool
}

// nextList waits for a list of version v.
func nextList(t *testing.T, ch <-chan receivedList, v int64) receivedList {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case l := <-ch:
			if l.Version == v {
				return l
			}
			if l.Version > v {
				t.Fatalf("got version %d, waiting for %d", l.Version, v)
			}
		case <-deadline:
			t.Fatalf("no allow-list version %d", v)
		}
	}
}

func TestAllowListVersions(t *testing.T) {
	r := newAccessRig(t, rigOptions{})
	_, credA := r.issue(t, "org-a")
	_, credB := r.issue(t, "org-b")
	lockA := connectLock(t, r, "ys-a-lock")
	lockN := connectLock(t, r, "ys-n-lock")
	listsA, listsN := lockA.listsOf(t), lockN.listsOf(t)

	if err := r.lists.refresh(); err != nil {
		t.Fatal(err)
	}
	if got := nextList(t, listsA, 1); !slices.Equal(got.Entries, []string{credA.Hash}) ||
		!slices.Equal(got.Methods, AccessMethods) {
		t.Fatalf("ys-a v1 %+v", got)
	}
	// A station of no organisation is open to all: both credentials.
	if got := nextList(t, listsN, 1); len(got.Entries) != 2 {
		t.Fatalf("ys-n v1 %+v", got)
	}

	// Nothing changed: nothing is published, no version is used up.
	if err := r.lists.refresh(); err != nil {
		t.Fatal(err)
	}
	// A revoked credential leaves every list; ys-b's list did not have it.
	if _, err := r.creds.Revoke(credA.ID); err != nil {
		t.Fatal(err)
	}
	r.lists.dirty = true
	if err := r.lists.refresh(); err != nil {
		t.Fatal(err)
	}
	if got := nextList(t, listsA, 2); len(got.Entries) != 0 || got.Entries == nil {
		t.Fatalf("ys-a v2 %+v", got)
	}
	if got := nextList(t, listsN, 2); !slices.Equal(got.Entries, []string{credB.Hash}) {
		t.Fatalf("ys-n v2 %+v", got)
	}
	if s, _ := r.lists.Status("ys-b"); s.Version != 1 || s.Entries != 1 {
		t.Fatalf("ys-b changed: %+v", s)
	}

	// Opening ys-a to all and restricting its methods make one version.
	yes := true
	r.rules.Update("ys-a", "org-a", RulesUpdate{OpenToAll: &yes})
	r.rules.Update("ys-a", "org-a", RulesUpdate{Methods: []string{"nfc"}})
	r.lists.dirty = true
	r.lists.refresh()
	got := nextList(t, listsA, 3)
	if !slices.Equal(got.Entries, []string{credB.Hash}) ||
		!slices.Equal(got.Methods, []string{"nfc"}) {
		t.Fatalf("ys-a v3 %+v", got)
	}
	// v1 to the three locks, v2 to ys-a and ys-n, v3 to ys-a; never to an AC.
	if n := testutil.ToFloat64(r.lists.publishes.WithLabelValues("ok")); n != 6 {
		t.Fatalf("%v publishes, want 6", n)
	}

	// A terminal that subscribes later gets the current list, retained.
	// (The same client subscribes again: a device may use no other client
	// id, and reconnecting at once under the same id races inside mochi.)
	topic := schemas.DeviceTopic("ys-a", "ys-a-lock", schemas.ChannelAccessList)
	if tok := lockA.c.Unsubscribe(topic); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if got := nextList(t, lockA.listsOf(t), 3); !got.retained {
		t.Fatal("the list did not come retained")
	}

	// A restart keeps the versions: the same content is the same version,
	// sent again to every terminal.
	lists2, err := NewAllowLists(AllowListOptions{DB: r.db, Bus: r.bus, Registry: r.reg,
		Credentials: r.creds, Rules: r.rules, Now: r.clock.Now,
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	lists2.dirty = true
	if err := lists2.refresh(); err != nil {
		t.Fatal(err)
	}
	if s, _ := lists2.Status("ys-a"); s.Version != 3 {
		t.Fatalf("after restart %+v", s)
	}
	if n := testutil.ToFloat64(lists2.publishes.WithLabelValues("ok")); n != 3 {
		t.Fatalf("after restart %v publishes, want one per terminal (3)", n)
	}
}

// TestAllowListRun: the running loop picks up a new credential and a new
// terminal by itself.
func TestAllowListRun(t *testing.T) {
	r := newAccessRig(t, rigOptions{})
	lock := connectLock(t, r, "ys-b-lock")
	lists := lock.listsOf(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.lists.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	if got := nextList(t, lists, 1); len(got.Entries) != 0 {
		t.Fatalf("v1 %+v", got)
	}
	_, cr := r.issue(t, "org-b")
	if got := nextList(t, lists, 2); !slices.Equal(got.Entries, []string{cr.Hash}) {
		t.Fatalf("v2 %+v", got)
	}
}

// TestAllowListStale: a terminal whose reported version is behind, by a
// change more than an hour old, is stale; on the status, the stale list
// and the metric.
func TestAllowListStale(t *testing.T) {
	s := newScoped(t, APIOptions{})
	r := s.accessRig
	lock := connectLock(t, r, "ys-a-lock")
	report := func(v int) {
		t.Helper()
		buf, _ := json.Marshal(map[string]any{"door": "closed", "bolt": "locked", "mode": "normal",
			"allowlist_version": v})
		tok := lock.c.Publish(schemas.DeviceTopic("ys-a", "ys-a-lock", schemas.ChannelTelemetry), 1,
			false, buf)
		tok.WaitTimeout(5 * time.Second)
		waitFor(t, "the report", func() bool {
			st, _ := r.lists.Status("ys-a")
			return len(st.Terminals) == 1 && st.Terminals[0].Reported != nil &&
				*st.Terminals[0].Reported == int64(v)
		})
	}
	stale := func() bool {
		st, _ := r.lists.Status("ys-a")
		return st.Terminals[0].Stale
	}

	r.lists.refresh() // v1
	report(1)
	if stale() {
		t.Fatal("stale while up to date")
	}

	r.clock.Add(10 * time.Minute)
	r.issue(t, "org-a")
	r.lists.dirty = true
	r.lists.refresh() // v2, published at t0+10m
	changed := r.clock.Now()
	r.clock.Add(59 * time.Minute)
	if stale() || r.lists.StaleCount() != 0 {
		t.Fatal("stale 59 minutes after the change")
	}
	r.clock.Add(2 * time.Minute)
	if !stale() || r.lists.StaleCount() != 1 {
		t.Fatal("not stale 61 minutes after the change")
	}
	if n := testutil.ToFloat64(r.lists.stale); n != 1 {
		t.Fatalf("gauge %v", n)
	}

	// A later change does not reset how long it has been behind.
	r.issue(t, "org-a")
	r.lists.dirty = true
	r.lists.refresh() // v3
	st, _ := r.lists.Status("ys-a")
	if st.Version != 3 || !st.Terminals[0].Stale || !st.Terminals[0].BehindSince.Equal(changed.UTC()) {
		t.Fatalf("status %+v", st.Terminals[0])
	}

	// Through the API: the station's access view and the stale list, the
	// latter filtered to the scope.
	code, body := call(t, s.srv, s.tokens[RoleMonitor], "GET", "/api/v1/access/stale", "")
	var list []TerminalStatus
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 ||
		list[0].Device != "ys-a-lock" {
		t.Fatalf("%d %s", code, body)
	}
	scopedB, _, _ := s.ops.Issue(Operator{Name: "b", Role: RoleMonitor, Orgs: []string{"org-b"}})
	if _, body := call(t, s.srv, scopedB, "GET", "/api/v1/access/stale", ""); body != "[]\n" {
		t.Fatalf("org-b sees %s", body)
	}
	var view StationAccessView
	_, body = call(t, s.srv, s.tokens[RoleMonitor], "GET", "/api/v1/stations/ys-a/access", "")
	if json.Unmarshal([]byte(body), &view) != nil || view.AllowList == nil ||
		view.AllowList.Version != 3 || !view.AllowList.Terminals[0].Stale {
		t.Fatalf("%s", body)
	}

	// Catching up clears it.
	report(3)
	if stale() || r.lists.StaleCount() != 0 {
		t.Fatal("stale after catching up")
	}
}

// TestAllowListRegistryChange: a refresh with nothing changed publishes
// nothing (and copies nothing), and a door terminal registered afterwards
// is sent its station's list at the next refresh without anything else
// changing.
func TestAllowListRegistryChange(t *testing.T) {
	r := newAccessRig(t, rigOptions{})
	if err := r.lists.refresh(); err != nil {
		t.Fatal(err)
	}
	ok := r.lists.publishes.WithLabelValues("ok")
	before := testutil.ToFloat64(ok)
	if err := r.lists.refresh(); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(ok); n != before {
		t.Fatalf("a refresh with nothing changed published %v lists", n-before)
	}

	secrets, err := r.reg.Provision([]devices.Device{
		{ID: "ys-a-lock2", Station: "ys-a", Kind: schemas.KindLock}})
	if err != nil {
		t.Fatal(err)
	}
	r.secrets["ys-a-lock2"] = secrets["ys-a-lock2"]
	lists := connectLock(t, r, "ys-a-lock2").listsOf(t)
	if err := r.lists.refresh(); err != nil {
		t.Fatal(err)
	}
	nextList(t, lists, 1)
	if n := testutil.ToFloat64(ok); n != before+1 {
		t.Fatalf("%v lists published for one new terminal, want 1", n-before)
	}
}
