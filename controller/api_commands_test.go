package controller

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/schemas"
)

// cmdAPI is the API with commands on a cmdRig, an operator of each role
// scoped to org-a, and an admin of every organisation.
func cmdAPI(t *testing.T) (*cmdRig, *httptest.Server, map[string]string) {
	t.Helper()
	r := newCmdRig(t, nil)
	ops, err := NewOperators(r.db, nil)
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, role := range Roles {
		tok, _, err := ops.Issue(Operator{Name: role + "-a", Role: role, Orgs: []string{"org-a"}})
		if err != nil {
			t.Fatal(err)
		}
		tokens[role] = tok
	}
	if tokens["root"], _, err = ops.Issue(Operator{Name: "root", Role: RoleAdmin,
		Orgs: []string{AllOrgs}}); err != nil {
		t.Fatal(err)
	}
	api, err := NewAPI(APIOptions{Registry: r.reg, Twins: r.twins, Operators: ops,
		Commands: r.cmds(), Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return r, srv, tokens
}

func TestCommandAPIPermissions(t *testing.T) {
	_, srv, tok := cmdAPI(t)
	acSet := `{"name":"ac.set","args":{"power":true,"mode":"cool","setpoint_c":26},` +
		`"expires_in":"90s","reason":"night shift"}`
	unlock := `{"name":"lock.unlock","args":{"seconds":5}}`
	for _, c := range []struct {
		who, path, body string
		code            int
		want            string
	}{
		// Every role may switch an AC in its scope.
		{RoleMonitor, "/api/v1/devices/ys-a-ac/commands", acSet, 201, `"issuer": "operator:monitor-a"`},
		{RoleScheduler, "/api/v1/devices/ys-a-ac/commands", acSet, 201, `"state": "pending"`},
		{RoleTechnician, "/api/v1/devices/ys-a-ac/commands", acSet, 201, `"reason": "night shift"`},
		{RoleMonitor, "/api/v1/devices/ys-a-ac/commands", `{"name":"device.ping"}`, 201, `"device.ping"`},
		// Doors, chargers and reboots need a technician or an admin.
		{RoleMonitor, "/api/v1/devices/ys-a-lock/commands", unlock, 403, "technician, admin"},
		{RoleScheduler, "/api/v1/devices/ys-a-lock/commands", unlock, 403, "may not send"},
		{RoleTechnician, "/api/v1/devices/ys-a-lock/commands", unlock, 201, `"lock.unlock"`},
		{RoleAdmin, "/api/v1/devices/ys-a-charger/commands",
			`{"name":"charger.slot","args":{"slot":2,"on":false}}`, 201, `"charger.slot"`},
		// Scope: another organisation's station, or one of none.
		{RoleAdmin, "/api/v1/devices/ys-b-ac/commands", acSet, 403, "outside the scope"},
		{RoleMonitor, "/api/v1/devices/ys-n-ac/commands", acSet, 403, "no organisation"},
		{"root", "/api/v1/devices/ys-b-ac/commands", acSet, 201, `"station": "ys-b"`},
		// Bad requests lose nothing and say why.
		{RoleAdmin, "/api/v1/devices/ys-a-ac/commands", `{"name":"ac.set","args":{"setpoint_c":99}}`,
			400, "setpoint_c"},
		{RoleAdmin, "/api/v1/devices/ys-a-ac/commands", `{"name":"ac.set","args":{"power":1}}`,
			400, "power"},
		{RoleAdmin, "/api/v1/devices/ys-a-ac/commands", `{"name":"lock.unlock"}`, 400, "for lock"},
		{RoleAdmin, "/api/v1/devices/ys-a-ac/commands", `{"name":"ac.set","argz":{}}`, 400,
			"unknown field"},
		{RoleAdmin, "/api/v1/devices/ys-a-ac/commands", `{"name":"device.ping","expires_in":"soon"}`,
			400, "expires_in"},
		{RoleAdmin, "/api/v1/devices/nope/commands", acSet, 404, "not found"},
	} {
		code, body := call(t, srv, tok[c.who], "POST", c.path, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s POST %s %s: %d %s, want %d with %q", c.who, c.path, c.body, code, body,
				c.code, c.want)
		}
	}

	// The list shows only what is in scope, newest first, with filters.
	var list []CommandRecord
	code, body := call(t, srv, tok[RoleMonitor], "GET", "/api/v1/commands", "")
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil {
		t.Fatalf("list: %d %s", code, body)
	}
	if len(list) != 6 {
		t.Fatalf("monitor of org-a sees %d commands: %s", len(list), body)
	}
	for i, rec := range list {
		if rec.Station != "ys-a" || (i > 0 && rec.Seq > list[i-1].Seq) {
			t.Fatalf("list %+v", list)
		}
	}
	code, body = call(t, srv, tok["root"], "GET", "/api/v1/commands?station=ys-b&state=pending", "")
	if code != 200 || strings.Count(body, `"id"`) != 1 {
		t.Fatalf("root, ys-b: %d %s", code, body)
	}
	for _, c := range []struct {
		query string
		code  int
		want  string
	}{
		{"device=ys-a-lock", 200, `"lock.unlock"`},
		{"issuer=operator:monitor-a", 200, `"operator:monitor-a"`},
		{"since=1h", 200, `"ac.set"`},
		{"since=2025-07-15T12:00:01%2B08:00", 200, `[]`},
		{"state=lost", 400, "want one of"},
		{"since=yesterday", 400, "since"},
		{"limit=0", 400, "limit"},
		{"station=ys-b", 403, "outside the scope"},
		{"device=ys-b-ac", 403, "outside the scope"},
	} {
		code, body := call(t, srv, tok[RoleMonitor], "GET", "/api/v1/commands?"+c.query, "")
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("GET ?%s: %d %s, want %d with %q", c.query, code, body, c.code, c.want)
		}
	}

	// One command by id, in scope or not.
	var rec CommandRecord
	_, body = call(t, srv, tok["root"], "GET", "/api/v1/commands?station=ys-b", "")
	var b []CommandRecord
	if err := json.Unmarshal([]byte(body), &b); err != nil || len(b) != 1 {
		t.Fatalf("%s %v", body, err)
	}
	code, body = call(t, srv, tok[RoleMonitor], "GET", "/api/v1/commands/"+b[0].ID, "")
	if code != 403 {
		t.Fatalf("other org's command: %d %s", code, body)
	}
	code, body = call(t, srv, tok[RoleMonitor], "GET", "/api/v1/commands/"+list[0].ID, "")
	if code != 200 || json.Unmarshal([]byte(body), &rec) != nil || rec.ID != list[0].ID {
		t.Fatalf("own command: %d %s", code, body)
	}
	code, _ = call(t, srv, tok[RoleMonitor], "GET", "/api/v1/commands/c20990101-000000-000001", "")
	if code != 404 {
		t.Fatalf("unknown command: %d", code)
	}
}

// The expiry a POST names is the one the command carries.
func TestCommandAPIExpiry(t *testing.T) {
	r, srv, tok := cmdAPI(t)
	code, body := call(t, srv, tok[RoleAdmin], "POST", "/api/v1/devices/ys-a-ac/commands",
		`{"name":"device.ping","expires_in":"45s"}`)
	var rec CommandRecord
	if code != 201 || json.Unmarshal([]byte(body), &rec) != nil {
		t.Fatalf("%d %s", code, body)
	}
	if want := r.clock.Now().Add(45 * time.Second); !rec.ExpiresAt.Equal(want) ||
		rec.Name != schemas.CmdPing {
		t.Fatalf("%+v, want expiry %v", rec, want)
	}
}
