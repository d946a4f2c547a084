package controller

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newAPIServer(t *testing.T, ready func() error) (*rig, *httptest.Server, string) {
	t.Helper()
	r := newRig(t, IngestOptions{})
	token, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ops.Add(token, Operator{Name: "night-desk", Role: RoleAdmin,
		Orgs: []string{AllOrgs}}); err != nil {
		t.Fatal(err)
	}
	api, err := NewAPI(APIOptions{Registry: r.reg, Twins: r.twins, Operators: r.ops,
		Gatherer: r.prom, Registerer: r.prom, Ready: ready})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return r, srv, token
}

func call(t *testing.T, srv *httptest.Server, token, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func TestAPI(t *testing.T) {
	_, srv, token := newAPIServer(t, nil)
	station := `{"id":"ys-002","name":"Huaihe Rd","lat":32.62,"lon":116.28,"hours":"06:00-22:00"}`
	for _, tc := range []struct {
		name, token, method, path, body string
		code                            int
		want                            string
	}{
		{"no token", "", "GET", "/api/v1/stations", "", 401, "token"},
		{"wrong token", "wst_nope-nope-nope-nope", "GET", "/api/v1/stations", "", 401, "token"},
		{"health needs no token", "", "GET", "/healthz", "", 200, "ok"},
		{"metrics need no token", "", "GET", "/metrics", "", 200, "waystation_messages_total"},
		{"add station", token, "POST", "/api/v1/stations", station, 201, `"ys-002"`},
		{"add it again", token, "POST", "/api/v1/stations", station, 409, "already exists"},
		{"typo in a field", token, "POST", "/api/v1/stations",
			`{"id":"ys-003","name":"x","lattitude":1,"lon":1,"hours":"24h"}`, 400, "lattitude"},
		{"bad latitude", token, "POST", "/api/v1/stations",
			`{"id":"ys-003","name":"x","lat":95,"lon":1,"hours":"24h"}`, 400, "latitude"},
		{"list all or none", token, "POST", "/api/v1/stations",
			`[{"id":"ys-004","name":"x","lat":1,"lon":1,"hours":"24h"},` +
				`{"id":"ys-005","name":"x","lat":1,"lon":1,"hours":"25h"}]`, 400, "hours"},
		{"none of them added", token, "GET", "/api/v1/stations/ys-004", "", 404, "not found"},
		{"register device", token, "POST", "/api/v1/devices",
			`{"id":"ys-002-aed","station":"ys-002","kind":"aed"}`, 201, `"secret"`},
		{"unknown kind", token, "POST", "/api/v1/devices",
			`{"id":"ys-002-x","station":"ys-002","kind":"toaster"}`, 400, "unknown kind"},
		{"unknown station", token, "POST", "/api/v1/devices",
			`{"id":"ys-009-ac","station":"ys-009","kind":"ac"}`, 404, "ys-009"},
		{"station with devices", token, "GET", "/api/v1/stations/ys-002", "", 200, `"ys-002-aed"`},
		{"devices of a station", token, "GET", "/api/v1/devices?station=ys-002", "", 200, `"aed"`},
		{"device", token, "GET", "/api/v1/devices/ys-002-aed", "", 200, `"kind": "aed"`},
		{"no such device", token, "GET", "/api/v1/devices/nope", "", 404, "not found"},
		{"no such route", token, "GET", "/api/v1/nothing", "", 404, "no such API route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, srv, tc.token, tc.method, tc.path, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("%s %s: %d %s\nwant %d containing %q", tc.method, tc.path, code, body,
					tc.code, tc.want)
			}
		})
	}

	// The secret is shown once: never in a later read.
	_, body := call(t, srv, token, "GET", "/api/v1/devices/ys-002-aed", "")
	if strings.Contains(body, "secret") {
		t.Fatalf("a device read shows a secret: %s", body)
	}
}

func TestHealthzWaitsForReady(t *testing.T) {
	ready := errors.New("starting")
	_, srv, _ := newAPIServer(t, func() error { return ready })
	if code, _ := call(t, srv, "", "GET", "/healthz", ""); code != 503 {
		t.Fatalf("healthz before ready: %d", code)
	}
	ready = nil
	if code, _ := call(t, srv, "", "GET", "/healthz", ""); code != 200 {
		t.Fatalf("healthz when ready: %d", code)
	}
}

func TestAdminTokenFile(t *testing.T) {
	r := newRig(t, IngestOptions{})
	file := filepath.Join(t.TempDir(), "admin.token")
	token, created, err := r.ops.EnsureAdminToken(file)
	if err != nil || !created {
		t.Fatalf("first start: %v %v", created, err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, %v", fi.Mode().Perm(), err)
	}
	again, created, err := r.ops.EnsureAdminToken(file)
	if err != nil || created || again != token {
		t.Fatalf("second start: %q %v %v", again, created, err)
	}
	op, err := r.ops.Lookup(token)
	if err != nil || op.Role != RoleAdmin {
		t.Fatalf("lookup: %+v %v", op, err)
	}
}
