package controller

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
)

// scoped is an API with two organisations' stations and an operator of
// each role scoped to org-a, plus an admin of every organisation.
type scoped struct {
	*accessRig
	ops    *Operators
	api    *API
	srv    *httptest.Server
	tokens map[string]string // by role, all scoped to org-a
	root   string            // admin of every organisation
}

func newScoped(t *testing.T, o APIOptions) *scoped {
	t.Helper()
	return newScopedWith(t, o, nil)
}

// newScopedWith is newScoped; edit, when set, adds options that need the
// rig before the API is built.
func newScopedWith(t *testing.T, o APIOptions, edit func(*accessRig, *APIOptions)) *scoped {
	t.Helper()
	r := newAccessRig(t, rigOptions{})
	s := &scoped{accessRig: r, tokens: map[string]string{}}
	var err error
	if s.ops, err = NewOperators(r.db, nil); err != nil {
		t.Fatal(err)
	}
	for _, role := range Roles {
		tok, _, err := s.ops.Issue(Operator{Name: role + "-a", Role: role, Orgs: []string{"org-a"}})
		if err != nil {
			t.Fatal(err)
		}
		s.tokens[role] = tok
	}
	if s.root, _, err = s.ops.Issue(Operator{Name: "root", Role: RoleAdmin,
		Orgs: []string{AllOrgs}}); err != nil {
		t.Fatal(err)
	}
	o.Registry, o.Twins, o.Operators, o.Gatherer, o.Registerer = r.reg, r.twins, s.ops, r.prom, r.prom
	o.Credentials, o.Rules, o.AllowLists, o.Usage = r.creds, r.rules, r.lists, r.usage
	o.Location, o.Now = shanghai, r.clock.Now
	if edit != nil {
		edit(r, &o)
	}
	if s.api, err = NewAPI(o); err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(s.api)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scoped) denied(reason string) float64 {
	return testutil.ToFloat64(s.api.denied.WithLabelValues(reason))
}

// matrixCall is one kind of API call, made on the own (org-a) or the other
// (org-b) organisation's station.
type matrixCall struct {
	name string
	// allowed lists the roles that may make the call: written out here,
	// not derived from the code's table, so the test can disagree with it.
	allowed []string
	// request builds the call for role on station st (ys-a or ys-b) of org.
	request func(role, st, org string) (method, path, body string)
	// ok is the status of an allowed call on an own station.
	ok int
}

var (
	everyone = []string{RoleMonitor, RoleScheduler, RoleTechnician, RoleAdmin}
	builders = []string{RoleTechnician, RoleAdmin}
	admins   = []string{RoleAdmin}
)

// baseMatrix covers the calls of the registry and operators.
var baseMatrix = []matrixCall{
	{"read station", everyone, func(_, st, _ string) (string, string, string) {
		return "GET", "/api/v1/stations/" + st, ""
	}, 200},
	{"read device", everyone, func(_, st, _ string) (string, string, string) {
		return "GET", "/api/v1/devices/" + st + "-ac", ""
	}, 200},
	{"list a station's devices", everyone, func(_, st, _ string) (string, string, string) {
		return "GET", "/api/v1/devices?station=" + st, ""
	}, 200},
	{"add station", builders, func(role, st, org string) (string, string, string) {
		return "POST", "/api/v1/stations", fmt.Sprintf(
			`{"id":"%s-new-%s","name":"N","lat":1,"lon":1,"hours":"24h","org":"%s"}`, st, role, org)
	}, 201},
	{"register device", builders, func(role, st, _ string) (string, string, string) {
		return "POST", "/api/v1/devices",
			fmt.Sprintf(`{"id":"%s-%s-lock","station":"%s","kind":"lock"}`, st, role, st)
	}, 201},
	{"add operator", admins, func(role, _, org string) (string, string, string) {
		return "POST", "/api/v1/operators",
			fmt.Sprintf(`{"name":"new-%s-%s","role":"monitor","orgs":["%s"]}`, role, org, org)
	}, 201},
}

// runMatrix makes every call as every role, on the own and the other
// organisation's station, and checks status and the denial counters.
func runMatrix(t *testing.T, s *scoped, calls []matrixCall) {
	t.Helper()
	for _, c := range calls {
		for _, role := range Roles {
			for _, side := range []struct{ st, org string }{{"ys-a", "org-a"}, {"ys-b", "org-b"}} {
				name := fmt.Sprintf("%s/%s/%s", c.name, role, side.org)
				t.Run(name, func(t *testing.T) {
					method, path, body := c.request(role, side.st, side.org)
					want, reason := c.ok, ""
					switch {
					case !slices.Contains(c.allowed, role):
						want, reason = 403, DeniedRole
					case side.org != "org-a":
						want, reason = 403, DeniedScope
					}
					before := s.denied(DeniedRole) + s.denied(DeniedScope)
					var reasonBefore float64
					if reason != "" {
						reasonBefore = s.denied(reason)
					}
					code, got := call(t, s.srv, s.tokens[role], method, path, body)
					if code != want {
						t.Fatalf("%s %s as %s: %d %s, want %d", method, path, role, code, got, want)
					}
					after := s.denied(DeniedRole) + s.denied(DeniedScope)
					if reason == "" {
						if after != before {
							t.Fatalf("an allowed call was counted as denied")
						}
						return
					}
					var e Error
					if json.Unmarshal([]byte(got), &e) != nil || e.Error == "" {
						t.Fatalf("403 without a reason: %s", got)
					}
					if s.denied(reason) != reasonBefore+1 {
						t.Fatalf("denial not counted under %s", reason)
					}
				})
			}
		}
	}
}

// accessMatrix covers the calls of credentials and station access rules.
func accessMatrix(s *scoped) []matrixCall {
	return []matrixCall{
		{"list credentials", builders, func(_, _, org string) (string, string, string) {
			return "GET", "/api/v1/credentials?org=" + org, ""
		}, 200},
		{"issue credential", admins, func(_, _, org string) (string, string, string) {
			return "POST", "/api/v1/credentials", `{"org":"` + org + `","methods":["nfc"]}`
		}, 201},
		{"revoke credential", admins, func(_, _, org string) (string, string, string) {
			_, cr, err := s.creds.Issue(org, "", nil)
			if err != nil {
				panic(err)
			}
			return "DELETE", "/api/v1/credentials/" + cr.ID, ""
		}, 200},
		{"read station access", everyone, func(_, st, _ string) (string, string, string) {
			return "GET", "/api/v1/stations/" + st + "/access", ""
		}, 200},
		{"set station access", builders, func(_, st, _ string) (string, string, string) {
			return "PUT", "/api/v1/stations/" + st + "/access", `{"open_to_all":true}`
		}, 200},
		{"read usage", everyone, func(_, st, _ string) (string, string, string) {
			return "GET", "/api/v1/usage?station=" + st, ""
		}, 200},
	}
}

func TestRoleScopeMatrix(t *testing.T) {
	s := newScoped(t, APIOptions{})
	runMatrix(t, s, baseMatrix)
	runMatrix(t, s, accessMatrix(s))
}

// TestListsFilteredToScope: lists show only what is in scope, for every
// role; an all-orgs admin sees everything, stations of no organisation too.
func TestListsFilteredToScope(t *testing.T) {
	s := newScoped(t, APIOptions{})
	for _, role := range Roles {
		var stations []devices.Station
		code, body := call(t, s.srv, s.tokens[role], "GET", "/api/v1/stations", "")
		if code != 200 || json.Unmarshal([]byte(body), &stations) != nil {
			t.Fatalf("%s: %d %s", role, code, body)
		}
		if len(stations) != 1 || stations[0].ID != "ys-a" {
			t.Fatalf("%s sees %+v", role, stations)
		}
		var devs []DeviceView
		_, body = call(t, s.srv, s.tokens[role], "GET", "/api/v1/devices", "")
		json.Unmarshal([]byte(body), &devs)
		if len(devs) != 2 || devs[0].Station != "ys-a" || devs[1].Station != "ys-a" {
			t.Fatalf("%s sees devices %s", role, body)
		}
	}
	var stations []devices.Station
	_, body := call(t, s.srv, s.root, "GET", "/api/v1/stations", "")
	json.Unmarshal([]byte(body), &stations)
	if len(stations) != 3 { // ys-a, ys-b, ys-n of no organisation
		t.Fatalf("root sees %s", body)
	}
	code, _ := call(t, s.srv, s.tokens[RoleAdmin], "GET", "/api/v1/stations/ys-n", "")
	if code != 403 {
		t.Fatalf("an org-a admin reads a station of no organisation: %d", code)
	}
}

func TestOperatorsLifecycle(t *testing.T) {
	s := newScoped(t, APIOptions{})

	// An org-a admin may not hand out a wider scope than its own.
	for _, orgs := range []string{`["*"]`, `["org-a","org-b"]`} {
		code, body := call(t, s.srv, s.tokens[RoleAdmin], "POST", "/api/v1/operators",
			`{"name":"x","role":"monitor","orgs":`+orgs+`}`)
		if code != 403 || !strings.Contains(body, "scope") {
			t.Fatalf("scope %s: %d %s", orgs, code, body)
		}
	}

	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{`{"name":"desk","role":"monitor","orgs":["org-a"]}`, 201, `"token"`},
		{`{"name":"desk","role":"monitor","orgs":["org-a"]}`, 409, "exists"},
		{`{"name":"boss","role":"overlord","orgs":["org-a"]}`, 400, "role"},
		{`{"name":"bad name","role":"monitor","orgs":["org-a"]}`, 400, "name"},
		{`{"name":"nobody","role":"monitor","orgs":[]}`, 400, "scope"},
		{`{"name":"x","role":"monitor","orgs":["*","org-a"]}`, 400, "alone"},
	} {
		code, body := call(t, s.srv, s.root, "POST", "/api/v1/operators", tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Fatalf("%s: %d %s", tc.body, code, body)
		}
	}

	// The new operator works, and stops working once revoked.
	var added NewOperator
	_, body := call(t, s.srv, s.root, "POST", "/api/v1/operators",
		`{"name":"temp","role":"scheduler","orgs":["org-b"]}`)
	if err := json.Unmarshal([]byte(body), &added); err != nil || added.Token == "" {
		t.Fatalf("%s", body)
	}
	if code, _ := call(t, s.srv, added.Token, "GET", "/api/v1/stations/ys-b", ""); code != 200 {
		t.Fatalf("new operator reads its station: %d", code)
	}
	// An org-a admin cannot revoke an org-b operator; root can.
	code, _ := call(t, s.srv, s.tokens[RoleAdmin], "DELETE", "/api/v1/operators/temp", "")
	if code != 403 {
		t.Fatalf("org-a admin revoked an org-b operator: %d", code)
	}
	if code, body := call(t, s.srv, s.root, "DELETE", "/api/v1/operators/temp", ""); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, _ := call(t, s.srv, added.Token, "GET", "/api/v1/stations/ys-b", ""); code != 401 {
		t.Fatalf("revoked token still works: %d", code)
	}
	if code, _ := call(t, s.srv, s.root, "DELETE", "/api/v1/operators/temp", ""); code != 404 {
		t.Fatalf("second revoke: %d", code)
	}

	// The org-a admin lists only operators within org-a.
	var list []Operator
	_, body = call(t, s.srv, s.tokens[RoleAdmin], "GET", "/api/v1/operators", "")
	json.Unmarshal([]byte(body), &list)
	for _, op := range list {
		if !slices.Equal(op.Orgs, []string{"org-a"}) {
			t.Fatalf("org-a admin lists %+v", op)
		}
	}
	if len(list) != len(Roles)+1 { // one per role, and desk
		t.Fatalf("org-a admin lists %d operators: %s", len(list), body)
	}
	if strings.Contains(body, "token") || strings.Contains(body, "hash") {
		t.Fatalf("a list shows tokens: %s", body)
	}
}

// TestFirstAdminRemains: the first admin cannot be revoked, and its token
// file names it again at every start, replacing an older token.
func TestFirstAdminRemains(t *testing.T) {
	r := newRig(t, IngestOptions{})
	file := t.TempDir() + "/admin.token"
	token, _, err := r.ops.EnsureAdminToken(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ops.Revoke(FirstAdminName); err == nil {
		t.Fatal("the first admin was revoked")
	}
	op, err := r.ops.Lookup(token)
	if err != nil || !op.AllOrgs() || op.Role != RoleAdmin {
		t.Fatalf("%+v %v", op, err)
	}

	// A hand-edited token file replaces the first admin's token.
	fresh, _ := NewToken()
	if err := os.WriteFile(file, []byte(fresh+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.ops.EnsureAdminToken(file); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ops.Lookup(token); err == nil {
		t.Fatal("the old first-admin token still works")
	}
	if _, err := r.ops.Lookup(fresh); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, op := range r.ops.List() {
		if op.Name == FirstAdminName {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d first admins", n)
	}
}

// TestLegacyOperators: operators stored before scopes carried "org"; an
// empty one meant every organisation.
func TestLegacyOperators(t *testing.T) {
	db, err := devices.OpenDB(filepath.Join(t.TempDir(), "w.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketOperators)
		if err != nil {
			return err
		}
		b.Put([]byte(tokenKey("wst_old-admin-token-0001")), []byte(`{"name":"admin","role":"admin"}`))
		return b.Put([]byte(tokenKey("wst_old-bank-token-00001")),
			[]byte(`{"name":"bank","role":"monitor","org":"org-b"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	ops, err := NewOperators(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := ops.Lookup("wst_old-admin-token-0001")
	if err != nil || !admin.AllOrgs() {
		t.Fatalf("%+v %v", admin, err)
	}
	bank, err := ops.Lookup("wst_old-bank-token-00001")
	if err != nil || !slices.Equal(bank.Orgs, []string{"org-b"}) || bank.InScope("org-a") {
		t.Fatalf("%+v %v", bank, err)
	}
}
