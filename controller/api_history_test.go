package controller

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
)

// historyScoped is the scoped API with a history of ys-a-ac and ys-b-ac, a
// sample a minute over the hour before the rig's clock, and backups on.
func historyScoped(t *testing.T) (*scoped, time.Time) {
	t.Helper()
	var now time.Time
	s := newScopedWith(t, APIOptions{}, func(r *accessRig, o *APIOptions) {
		h, err := devices.NewHistory(r.db, devices.HistoryOptions{Now: r.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		now = r.clock.Now()
		for i := range 60 {
			at := now.Add(time.Duration(i-60) * time.Minute)
			for _, d := range []string{"ys-a-ac", "ys-b-ac"} {
				h.Record(d, at, json.RawMessage(fmt.Sprintf(`{"room_c":%d}`, i)))
			}
		}
		o.History, o.Backup = h, r.db
	})
	return s, now
}

func TestHistoryRoleScopeMatrix(t *testing.T) {
	s, _ := historyScoped(t)
	runMatrix(t, s, []matrixCall{
		{"read history", everyone, func(_, st, _ string) (string, string, string) {
			return "GET", "/api/v1/devices/" + st + "-ac/history", ""
		}, 200},
	})
}

func TestHistoryAPI(t *testing.T) {
	s, now := historyScoped(t)
	get := func(query string) (int, HistoryPage, string) {
		t.Helper()
		code, body := call(t, s.srv, s.tokens[RoleMonitor], "GET",
			"/api/v1/devices/ys-a-ac/history"+query, "")
		var page HistoryPage
		if code == 200 {
			if err := json.Unmarshal([]byte(body), &page); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
		}
		return code, page, body
	}
	rfc := func(t time.Time) string { return url.QueryEscape(t.Format(time.RFC3339Nano)) }

	// By default the last 24 hours: all 60 samples, oldest first, with the
	// state as the device reported it.
	code, page, body := get("")
	if code != 200 || len(page.Samples) != 60 || page.Next != nil {
		t.Fatalf("default: %d, %d samples: %.300s", code, len(page.Samples), body)
	}
	if !page.Samples[0].At.Equal(now.Add(-time.Hour)) || room(page.Samples[59]) != 59 {
		t.Fatalf("first %v, last %s", page.Samples[0].At, page.Samples[59].State)
	}

	// A window, thinned to one sample every 10 minutes.
	code, page, _ = get("?from=" + rfc(now.Add(-30*time.Minute)) + "&to=" + rfc(now) + "&step=10m")
	if code != 200 || len(page.Samples) != 3 || page.Step != "10m0s" {
		t.Fatalf("step: %d %+v", code, page)
	}

	// Pages: limit, then next as the from of the following page.
	var all []devices.Sample
	from := now.Add(-2 * time.Hour)
	for pages := 0; ; pages++ {
		code, page, body = get("?limit=25&from=" + rfc(from) + "&to=" + rfc(now))
		if code != 200 || pages > 5 {
			t.Fatalf("page %d: %d %s", pages, code, body)
		}
		all = append(all, page.Samples...)
		if page.Next == nil {
			break
		}
		from = *page.Next
	}
	if len(all) != 60 || room(all[59]) != 59 {
		t.Fatalf("%d samples over the pages", len(all))
	}

	for _, c := range []struct {
		query, want string
		code        int
	}{
		{"?from=yesterday", "from", 400},
		{"?to=2025-13-01", "to", 400},
		{"?from=" + rfc(now) + "&to=" + rfc(now.Add(-time.Hour)), "not after", 400},
		{"?step=-1m", "step", 400},
		{"?step=often", "step", 400},
		{"?limit=0", "limit", 400},
		{"?limit=1000001", "limit", 400},
	} {
		code, _, body := get(c.query)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.query, code, body, c.code, c.want)
		}
	}
	code, body = call(t, s.srv, s.root, "GET", "/api/v1/devices/ys-z-ac/history", "")
	if code != 404 {
		t.Fatalf("unknown device: %d %s", code, body)
	}
}

// TestBackupAPI: an admin of every organisation downloads a copy of the
// data file that opens with bbolt and holds the data; nobody else may.
func TestBackupAPI(t *testing.T) {
	s, _ := historyScoped(t)
	for role, tok := range s.tokens {
		if code, body := call(t, s.srv, tok, "GET", "/api/v1/backup", ""); code != 403 {
			t.Fatalf("%s of org-a: %d %s", role, code, body)
		}
	}
	req, _ := http.NewRequest("GET", s.srv.URL+"/api/v1/backup", nil)
	req.Header.Set("Authorization", "Bearer "+s.root)
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || int64(len(raw)) != resp.ContentLength {
		t.Fatalf("backup: %d, %d bytes of %d, %v", resp.StatusCode, len(raw), resp.ContentLength, err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg, err := devices.NewRegistry(db, devices.RegistryOptions{})
	if err == nil {
		_, err = reg.Device("ys-b-lock")
	}
	if err != nil {
		t.Fatalf("the backup's registry: %v", err)
	}
}

func room(s devices.Sample) int {
	var st struct {
		RoomC int `json:"room_c"`
	}
	if json.Unmarshal(s.State, &st) != nil {
		return -1
	}
	return st.RoomC
}

// TestBrokerLoginsNeedEveryOrganisation: the broker's login files cover every
// organisation's devices, so an operator scoped to one, even its admin, is
// refused them; an admin of every organisation gets them.
func TestBrokerLoginsNeedEveryOrganisation(t *testing.T) {
	s, _ := historyScoped(t)
	for role, tok := range s.tokens {
		if code, body := call(t, s.srv, tok, "GET", "/api/v1/broker/logins", ""); code != 403 {
			t.Fatalf("%s of org-a: %d %s", role, code, body)
		}
	}
	code, body := call(t, s.srv, s.root, "GET", "/api/v1/broker/logins", "")
	if code != 200 || !strings.Contains(body, `"logins"`) {
		t.Fatalf("admin of every organisation: %d %s", code, body)
	}
}
