package controller

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/waystation/waystation/schemas"
)

// alertAPI is the API with alerts on an alert rig, with an operator of
// each role scoped to org-a and an admin of every organisation.
type alertAPI struct {
	*alertRig
	srv    *httptest.Server
	tokens map[string]string
	root   string
	faults int
}

func newAlertAPI(t *testing.T) *alertAPI {
	t.Helper()
	r := newAlertRig(t, alertRigOptions{})
	s := &alertAPI{alertRig: r, tokens: map[string]string{}}
	ops, err := NewOperators(r.db, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range Roles {
		tok, _, err := ops.Issue(Operator{Name: role + "-a", Role: role, Orgs: []string{"org-a"}})
		if err != nil {
			t.Fatal(err)
		}
		s.tokens[role] = tok
	}
	if s.root, _, err = ops.Issue(Operator{Name: "root", Role: RoleAdmin,
		Orgs: []string{AllOrgs}}); err != nil {
		t.Fatal(err)
	}
	api, err := NewAPI(APIOptions{Registry: r.reg, Twins: r.twins, Operators: ops, Alerts: r.alerts,
		Location: shanghai, Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(api)
	t.Cleanup(s.srv.Close)
	return s
}

// fault raises a new alert at a station's lock (a fault with a new code)
// and returns its id.
func (s *alertAPI) fault(t *testing.T, station string) string {
	t.Helper()
	s.faults++
	d, err := s.reg.Device(station + "-lock")
	if err != nil {
		t.Fatal(err)
	}
	code := fmt.Sprintf("F%d", s.faults)
	s.alerts.Observe(Observation{Device: d, Channel: schemas.ChannelEvent, At: s.clock.Now(),
		Event: &schemas.Event{Type: schemas.EventFaultRaised, Code: code}})
	for _, a := range s.alerts.List(AlertFilter{Device: d.ID, Rule: RuleDeviceFault}) {
		if a.Subject == code {
			return a.ID
		}
	}
	t.Fatalf("fault %s raised no alert", code)
	return ""
}

// TestAlertAPIRolesAndScope: every role reads the alerts of its own
// organisation's stations; monitors and admins acknowledge, resolve and
// silence them; nobody touches another organisation's.
func TestAlertAPIRolesAndScope(t *testing.T) {
	s := newAlertAPI(t)
	acks := []string{RoleMonitor, RoleAdmin}
	calls := []struct {
		name    string
		allowed []string
		req     func(st string) (string, string, string)
		ok      int
	}{
		{"list", everyone, func(st string) (string, string, string) {
			return "GET", "/api/v1/alerts?station=" + st, ""
		}, 200},
		{"get", everyone, func(st string) (string, string, string) {
			return "GET", "/api/v1/alerts/" + s.fault(t, st), ""
		}, 200},
		{"ack", acks, func(st string) (string, string, string) {
			return "POST", "/api/v1/alerts/" + s.fault(t, st) + "/ack", `{"note":"on it"}`
		}, 200},
		{"resolve", acks, func(st string) (string, string, string) {
			return "POST", "/api/v1/alerts/" + s.fault(t, st) + "/resolve", ""
		}, 200},
		{"silence", acks, func(st string) (string, string, string) {
			return "POST", "/api/v1/silences", `{"station":"` + st + `","for":"2h","reason":"work"}`
		}, 201},
		{"unsilence", acks, func(st string) (string, string, string) {
			sl, err := s.alerts.AddSilence(Silence{Station: st, Reason: "x", CreatedBy: "root",
				Expires: s.clock.Now().Add(3600e9)})
			if err != nil {
				t.Fatal(err)
			}
			return "DELETE", "/api/v1/silences/" + sl.ID, ""
		}, 200},
	}
	for _, c := range calls {
		for _, role := range Roles {
			for _, st := range []string{"ys-a", "ys-b"} {
				method, path, body := c.req(st)
				want := c.ok
				switch {
				case !slices.Contains(c.allowed, role):
					want = 403
				case st != "ys-a":
					want = 403
				}
				code, got := call(t, s.srv, s.tokens[role], method, path, body)
				if code != want {
					t.Errorf("%s as %s on %s: %d %s, want %d", c.name, role, st, code, got, want)
				}
			}
		}
	}
}

// TestAlertAPIListAckResolve: the list filters by state, severity and
// station and shows only what is in scope; ack records the note; errors
// are clear.
func TestAlertAPIListAckResolve(t *testing.T) {
	s := newAlertAPI(t)
	mine := s.fault(t, "ys-a")
	s.fault(t, "ys-b")
	lock, _ := s.reg.Device("ys-a-lock")
	s.alerts.Observe(Observation{Device: lock, Channel: schemas.ChannelEvent, At: s.clock.Now(),
		Event: &schemas.Event{Type: schemas.EventDoorForced}})
	s.settle(t)

	list := func(tok, query string) []Alert {
		t.Helper()
		code, body := call(t, s.srv, tok, "GET", "/api/v1/alerts"+query, "")
		var out []Alert
		if code != 200 || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("GET %s: %d %s", query, code, body)
		}
		return out
	}
	if got := list(s.root, ""); len(got) != 3 {
		t.Fatalf("root sees %d alerts", len(got))
	}
	if got := list(s.tokens[RoleMonitor], ""); len(got) != 2 || got[0].Station != "ys-a" ||
		got[1].Station != "ys-a" {
		t.Fatalf("the org-a monitor sees %+v", got)
	}
	if got := list(s.root, "?severity=critical"); len(got) != 1 || got[0].Rule != RuleDoorForced {
		t.Fatalf("critical: %+v", got)
	}
	if got := list(s.root, "?station=ys-b&state=firing"); len(got) != 1 || got[0].Station != "ys-b" {
		t.Fatalf("ys-b firing: %+v", got)
	}
	code, body := call(t, s.srv, s.root, "GET", "/api/v1/alerts?state=burning", "")
	if code != 400 || !strings.Contains(body, "firing") {
		t.Fatalf("bad state: %d %s", code, body)
	}

	code, body = call(t, s.srv, s.tokens[RoleMonitor], "POST", "/api/v1/alerts/"+mine+"/ack",
		`{"note":"technician called"}`)
	var a Alert
	if code != 200 || json.Unmarshal([]byte(body), &a) != nil || a.AckedBy != "monitor-a" ||
		a.AckNote != "technician called" || a.State != AlertAcknowledged {
		t.Fatalf("ack: %d %s", code, body)
	}
	if got := list(s.root, "?state=acknowledged"); len(got) != 1 || got[0].ID != mine {
		t.Fatalf("acknowledged: %+v", got)
	}
	code, body = call(t, s.srv, s.tokens[RoleMonitor], "POST", "/api/v1/alerts/"+mine+"/ack", "")
	if code != 409 || !strings.Contains(body, "already acknowledged") {
		t.Fatalf("second ack: %d %s", code, body)
	}
	code, _ = call(t, s.srv, s.tokens[RoleMonitor], "POST", "/api/v1/alerts/"+mine+"/resolve", "")
	if code != 200 {
		t.Fatalf("resolve: %d", code)
	}
	code, _ = call(t, s.srv, s.root, "POST", "/api/v1/alerts/999/ack", "")
	if code != 404 {
		t.Fatalf("unknown alert: %d", code)
	}
	code, body = call(t, s.srv, s.root, "POST", "/api/v1/alerts/"+mine+"/ack", `{"nope":1}`)
	if code != 400 || !strings.Contains(body, "nope") {
		t.Fatalf("typo in the body: %d %s", code, body)
	}

	// Silences: bad input is refused; a rule on every station needs an
	// operator of every organisation.
	for _, tc := range []struct {
		tok, body string
		code      int
		want      string
	}{
		{s.root, `{"station":"ys-a","reason":"x"}`, 400, "for"},
		{s.root, `{"station":"ys-a","for":"soon","reason":"x"}`, 400, "duration"},
		{s.root, `{"station":"ys-a","for":"2h"}`, 400, "reason"},
		{s.root, `{"rule":"aed.cabinet_opened","for":"2h","reason":"x"}`, 400, "never"},
		{s.root, `{"rule":"no.such","for":"2h","reason":"x"}`, 400, "unknown rule"},
		{s.root, `{"device":"ys-zz","for":"2h","reason":"x"}`, 400, "ys-zz"},
		{s.tokens[RoleMonitor], `{"rule":"lock.battery_low","for":"2h","reason":"x"}`, 403,
			"every organisation"},
		{s.tokens[RoleMonitor], `{"device":"ys-a-lock","for":"2h","reason":"new battery"}`, 201, "ys-a-lock"},
		{s.root, `{"rule":"lock.battery_low","for":"2h","reason":"x"}`, 201, "battery"},
	} {
		code, body := call(t, s.srv, tc.tok, "POST", "/api/v1/silences", tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("POST %s: %d %s, want %d with %q", tc.body, code, body, tc.code, tc.want)
		}
	}
	var sl []Silence
	code, body = call(t, s.srv, s.tokens[RoleMonitor], "GET", "/api/v1/silences", "")
	if code != 200 || json.Unmarshal([]byte(body), &sl) != nil || len(sl) != 2 {
		t.Fatalf("silences: %d %s", code, body)
	}
}
