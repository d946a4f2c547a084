package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
)

// apiFixture is the HTTP API over a real bbolt file in a temporary data
// folder that also holds the admin.token, served on loopback.
type apiFixture struct {
	url   string
	token string // the admin token, also in data/admin.token
	data  string
	reg   *devices.Registry
	twins *devices.Twins

	requests atomic.Int64 // requests the API received
}

func newAPIFixture(t *testing.T) *apiFixture {
	t.Helper()
	// The caller's environment must not choose the server or the token.
	t.Setenv(envServer, "")
	t.Setenv(envToken, "")

	data := t.TempDir()
	db, err := devices.OpenDB(filepath.Join(data, "waystation.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	reg, err := devices.NewRegistry(db, devices.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	twins, err := devices.NewTwins(db, devices.TwinsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ops, err := controller.NewOperators(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := ops.EnsureAdminToken(filepath.Join(data, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}

	f := &apiFixture{token: token, data: data, reg: reg, twins: twins}
	api, err := controller.NewAPI(controller.APIOptions{Registry: reg, Twins: twins, Operators: ops})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// args appends the flags that point a client command at the fixture.
func (f *apiFixture) args(args ...string) []string {
	return append(args, "--server", f.url, "--token", f.token)
}

// runClient runs the command tree with args and returns what it wrote to
// stdout and to stderr.
func runClient(args ...string) (stdout, stderr string, err error) {
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// listStationsJSON lists stations through the CLI as JSON.
func listStationsJSON(t *testing.T, args ...string) []devices.Station {
	t.Helper()
	out, _, err := runClient(append([]string{"stations", "list", "-o", "json"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var list []devices.Station
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("stations list -o json: %v\n%s", err, out)
	}
	return list
}

func TestClientToken(t *testing.T) {
	f := newAPIFixture(t)
	if _, err := f.reg.AddStation(devices.Station{ID: "ys-001", Name: "城关驿站", Lat: 32.6, Lon: 116.2,
		Hours: "24h"}); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	blank := t.TempDir()
	if err := os.WriteFile(filepath.Join(blank, adminTokenFile), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		env     string // WAYSTATION_TOKEN
		args    []string
		wantErr string // substring; "" for success
	}{
		{"from --data", "", []string{"--data", f.data}, ""},
		{"from the environment", f.token, []string{"--data", empty}, ""},
		{"--token", "", []string{"--token", f.token, "--data", empty}, ""},
		{"--token wins over the environment", "wst_not-a-known-token", []string{"--token", f.token}, ""},
		{"the environment wins over --data", "wst_not-a-known-token", []string{"--data", f.data},
			"missing or unknown operator token (HTTP 401 Unauthorized): check --token or " +
				"$WAYSTATION_TOKEN (the server writes an admin token to admin.token in its data folder)"},
		{"none", "", []string{"--data", empty},
			"no operator token: pass --token, set WAYSTATION_TOKEN, or run on the server's machine " +
				"with --data pointing at its data folder (there is no " +
				filepath.Join(empty, adminTokenFile) + ")"},
		{"empty token file", "", []string{"--data", blank},
			filepath.Join(blank, adminTokenFile) + " is empty"},
		{"empty --token", "", []string{"--token", " ", "--data", f.data}, "--token is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envToken, tt.env)
			before := f.requests.Load()
			args := append([]string{"stations", "list", "-o", "json", "--server", f.url}, tt.args...)
			out, _, err := runClient(args...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out, `"id": "ys-001"`) {
					t.Errorf("output lacks the station:\n%s", out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v\nwant %s", err, tt.wantErr)
			}
			// Only the server can refuse a token; the others fail before any request.
			wantRequests := int64(0)
			if strings.Contains(tt.wantErr, "HTTP 401") {
				wantRequests = 1
			}
			if got := f.requests.Load() - before; got != wantRequests {
				t.Errorf("%d requests sent, want %d", got, wantRequests)
			}
		})
	}
}

func TestClientServerAddress(t *testing.T) {
	f := newAPIFixture(t)
	if _, err := f.reg.AddStation(devices.Station{ID: "ys-001", Name: "城关驿站", Lat: 32.6, Lon: 116.2,
		Hours: "24h"}); err != nil {
		t.Fatal(err)
	}

	// From the environment, without a scheme.
	t.Setenv(envServer, strings.TrimPrefix(f.url, "http://"))
	if got := listStationsJSON(t, "--token", f.token); len(got) != 1 {
		t.Errorf("with $%s: %d stations, want 1", envServer, len(got))
	}

	// --server wins over the environment.
	t.Setenv(envServer, "http://127.0.0.1:1")
	if got := listStationsJSON(t, "--token", f.token, "--server", f.url+"/"); len(got) != 1 {
		t.Errorf("with --server: %d stations, want 1", len(got))
	}

	tests := []struct {
		in, want, wantErr string
	}{
		{in: "127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{in: " https://ws.example.org/prefix/ ", want: "https://ws.example.org/prefix"},
		{in: "ftp://127.0.0.1", wantErr: `server address "ftp://127.0.0.1": want http://host:port`},
		{in: "http://", wantErr: `server address "http://": want http://host:port`},
		{in: "", wantErr: `server address "": want http://host:port`},
		{in: "http://h:1/?a=b", wantErr: `server address "http://h:1/?a=b"`},
	}
	for _, tt := range tests {
		u, err := parseServer(tt.in)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseServer(%q) = %v, %v; want error %s", tt.in, u, err, tt.wantErr)
			}
		case err != nil || u.String() != tt.want:
			t.Errorf("parseServer(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
		}
	}
}

// TestClientPathPrefix reaches the API behind a reverse proxy that serves it
// under a path.
func TestClientPathPrefix(t *testing.T) {
	f := newAPIFixture(t)
	if _, err := f.reg.AddStation(devices.Station{ID: "ys-001", Name: "城关驿站", Lat: 32.6, Lon: 116.2,
		Hours: "24h"}); err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(f.url)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	rp.Transport = transport
	var paths []string
	var mu sync.Mutex
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		http.StripPrefix("/waystation", rp).ServeHTTP(w, r)
	}))
	t.Cleanup(transport.CloseIdleConnections)
	t.Cleanup(proxy.Close)

	got := listStationsJSON(t, "--token", f.token, "--server", proxy.URL+"/waystation/")
	if len(got) != 1 || got[0].ID != "ys-001" {
		t.Errorf("got %+v, want station ys-001", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "/waystation/api/v1/stations" {
		t.Errorf("proxy saw %q, want /waystation/api/v1/stations", paths)
	}
}

func TestClientBadOutput(t *testing.T) {
	f := newAPIFixture(t)
	for _, args := range [][]string{
		{"stations", "list"},
		{"stations", "add", "--id", "ys-001", "--name", "a", "--lat", "1", "--lon", "1", "--hours", "24h"},
		{"devices", "list"},
		{"devices", "show", "ys-001-ac1"},
	} {
		_, _, err := runClient(f.args(append(args, "-o", "yaml")...)...)
		want := `invalid argument "yaml" for "-o, --output" flag: want table or json` +
			" (see waystation " + strings.Join(args[:2], " ") + " --help)"
		if err == nil || err.Error() != want {
			t.Errorf("%v: error %v, want %s", args, err, want)
		}
	}
	if n := f.requests.Load(); n != 0 {
		t.Errorf("%d requests sent with a bad -o", n)
	}
}

func TestClientUnreachable(t *testing.T) {
	t.Setenv(envToken, "")
	// A port nothing listens on: bind one, then let it go.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, _, err = runClient("stations", "list", "--server", addr, "--token", "wst_0123456789abcdef")
	want := "cannot reach the server at http://" + addr + ": connection refused"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %s", err, want)
	}

	// A server that never answers.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	_, _, err = runClient("stations", "list", "--server", slow.URL, "--token", "wst_0123456789abcdef",
		"--timeout", "100ms")
	want = "no answer from the server at " + slow.URL + " within 100ms"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %s", err, want)
	}
}

func TestAPIError(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   string
	}{
		{409, `{"error": "station ys-001: already exists"}`,
			"station ys-001: already exists (HTTP 409 Conflict)"},
		{502, "<html>\n<body>Bad Gateway</body>\n</html>\n",
			"<html> <body>Bad Gateway</body> </html> (HTTP 502 Bad Gateway)"},
		{500, "", "no message (HTTP 500 Internal Server Error)"},
		{404, strings.Repeat("驿", 300), strings.Repeat("驿", 200) + "... (HTTP 404 Not Found)"},
	}
	for _, tt := range tests {
		if got := newAPIError(tt.status, []byte(tt.body)).Error(); got != tt.want {
			t.Errorf("%d %q:\n got %s\nwant %s", tt.status, tt.body, got, tt.want)
		}
	}
}
