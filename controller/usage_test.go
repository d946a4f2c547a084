package controller

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

func at(day, hour, minute int) time.Time {
	return time.Date(2025, 7, day, hour, minute, 0, 0, shanghai)
}

// rowsOf lists a report's rows as "station start visits face/nfc/qr".
func rowsOf(rep UsageReport) []string {
	var out []string
	for _, r := range rep.Rows {
		out = append(out, r.Station+" "+r.Start.Format("01-02T15")+" "+itoa(r.Visits)+" "+
			itoa(r.Face)+"/"+itoa(r.NFC)+"/"+itoa(r.QR))
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestUsageByHourAndDay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	db, err := devices.OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: at(16, 12, 0)}
	prom := prometheus.NewRegistry()
	u, err := NewUsage(UsageOptions{DB: db, Location: shanghai, Now: clock.Now, Registerer: prom})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		station, method string
		at              time.Time
	}{
		{"ys-a", "face", at(15, 8, 10)},
		{"ys-a", "nfc", at(15, 8, 50)},
		{"ys-a", "nfc", at(15, 9, 5)},
		{"ys-a", "qr", at(16, 0, 30)}, // after midnight: the next day
		{"ys-b", "face", at(15, 8, 30)},
		{"ys-a", "face", at(14, 23, 59)}, // before the period asked for
	} {
		u.Visit(v.station, v.method, v.at)
	}
	if err := u.Flush(); err != nil {
		t.Fatal(err)
	}
	// Counted after the flush add to the same hour.
	u.Visit("ys-a", "qr", at(15, 8, 59))

	rep, err := u.Report([]string{"ys-a", "ys-b"}, at(15, 0, 0), at(17, 0, 0), ByHour)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ys-a 07-15T08 3 1/1/1", "ys-a 07-15T09 1 0/1/0", "ys-a 07-16T00 1 0/0/1",
		"ys-b 07-15T08 1 1/0/0"}
	if got := rowsOf(rep); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("by hour %v, want %v", got, want)
	}
	if rep.Total.Visits != 6 || rep.TimeZone != "Asia/Shanghai" {
		t.Fatalf("total %+v tz %s", rep.Total, rep.TimeZone)
	}

	rep, _ = u.Report([]string{"ys-a"}, at(14, 0, 0), at(17, 0, 0), ByDay)
	want = []string{"ys-a 07-14T00 1 1/0/0", "ys-a 07-15T00 4 1/2/1", "ys-a 07-16T00 1 0/0/1"}
	if got := rowsOf(rep); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("by day %v, want %v", got, want)
	}
	if n := testutil.ToFloat64(u.visits.WithLabelValues("face")); n != 3 {
		t.Fatalf("visits metric face %v", n)
	}

	for _, bad := range []struct {
		from, to time.Time
		by       string
	}{
		{at(15, 0, 0), at(15, 0, 0), ByDay},
		{at(15, 0, 0), at(1, 0, 0), ByDay},
		{at(1, 0, 0), at(15, 0, 0).AddDate(0, 1, 10), ByHour},
		{at(15, 0, 0), at(16, 0, 0), "week"},
	} {
		if _, err := u.Report([]string{"ys-a"}, bad.from, bad.to, bad.by); err == nil {
			t.Errorf("%v..%v by %s accepted", bad.from, bad.to, bad.by)
		}
	}

	// The counts survive a reopen.
	db.Close()
	db, err = devices.OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, err = NewUsage(UsageOptions{DB: db, Location: shanghai, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	rep, _ = u.Report([]string{"ys-a"}, at(15, 0, 0), at(16, 0, 0), ByDay)
	if got := rowsOf(rep); len(got) != 1 || got[0] != "ys-a 07-15T00 4 1/2/1" {
		t.Fatalf("after reopen %v", got)
	}
}

func TestUsageRetention(t *testing.T) {
	db, err := devices.OpenDB(filepath.Join(t.TempDir(), "w.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := &fakeClock{t: at(15, 12, 0)}
	u, err := NewUsage(UsageOptions{DB: db, Location: shanghai, Now: clock.Now,
		Retention: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	u.Visit("ys-a", "nfc", at(15, 9, 0))
	u.Visit("ys-a", "nfc", at(16, 9, 0))
	if err := u.Flush(); err != nil {
		t.Fatal(err)
	}

	// Once the first hour has ended two days ago it goes; the second stays.
	clock.Set(at(17, 9, 59))
	if err := u.Flush(); err != nil {
		t.Fatal(err)
	}
	rep, _ := u.Report([]string{"ys-a"}, at(14, 0, 0), at(18, 0, 0), ByDay)
	if got := rowsOf(rep); len(got) != 2 {
		t.Fatalf("pruned too early %v", got)
	}
	clock.Set(at(17, 11, 0)) // an hour after the last pruning, and past 10:00
	if err := u.Flush(); err != nil {
		t.Fatal(err)
	}
	rep, _ = u.Report([]string{"ys-a"}, at(14, 0, 0), at(18, 0, 0), ByDay)
	if got := rowsOf(rep); len(got) != 1 || got[0] != "ys-a 07-16T00 1 0/1/0" {
		t.Fatalf("after pruning %v", got)
	}
}

// TestOccupancy: a terminal's own count wins while fresh; otherwise the
// visits of the last half hour stand for the people inside.
func TestOccupancy(t *testing.T) {
	r := newAccessRig(t, rigOptions{})
	tok, _ := r.issue(t, "org-a")
	lock := connectLock(t, r, "ys-a-lock")
	for i := range 3 {
		lock.ask(t, "in-"+itoa(int64(i)), "face", tok)
		if res := lock.answer(t); !res.Granted {
			t.Fatalf("answer %+v", res)
		}
		r.clock.Add(10 * time.Minute)
	}
	// Entries at 12:00, 12:10, 12:20; it is 12:30: the first is half an
	// hour old and still counts.
	if occ := r.usage.Occupancy("ys-a"); occ.People != 3 || occ.Source != "estimate" {
		t.Fatalf("occupancy %+v", occ)
	}
	r.clock.Add(time.Minute)
	if occ := r.usage.Occupancy("ys-a"); occ.People != 2 {
		t.Fatalf("occupancy %+v", occ)
	}
	rep, _ := r.usage.Report([]string{"ys-a"}, at(15, 0, 0), at(16, 0, 0), ByHour)
	if got := rowsOf(rep); len(got) != 1 || got[0] != "ys-a 07-15T12 3 3/0/0" {
		t.Fatalf("visits of granted requests %v", got)
	}

	// The terminal counts people itself.
	buf, _ := json.Marshal(map[string]any{"door": "closed", "bolt": "locked", "mode": "normal",
		"occupancy": 7})
	lock.c.Publish(schemas.DeviceTopic("ys-a", "ys-a-lock", schemas.ChannelTelemetry), 1, false,
		buf).WaitTimeout(5 * time.Second)
	waitFor(t, "the terminal's count", func() bool {
		occ := r.usage.Occupancy("ys-a")
		return occ.People == 7 && occ.Source == "terminal"
	})
	r.clock.Add(31 * time.Minute)
	if occ := r.usage.Occupancy("ys-a"); occ.Source != "estimate" || occ.People != 0 {
		t.Fatalf("an old count is still used: %+v", occ)
	}
}

// TestUsageAPI: the route's periods, defaults, refusals and the station
// view's occupancy.
func TestUsageAPI(t *testing.T) {
	s := newScoped(t, APIOptions{})
	s.clock.Set(at(16, 10, 0))
	s.usage.Visit("ys-a", "nfc", at(15, 8, 0))
	s.usage.Visit("ys-a", "nfc", at(16, 9, 0))
	s.usage.Visit("ys-b", "qr", at(16, 9, 0))
	tok := s.tokens[RoleMonitor]

	var rep UsageReport
	code, body := call(t, s.srv, tok, "GET", "/api/v1/usage", "")
	if code != 200 || json.Unmarshal([]byte(body), &rep) != nil {
		t.Fatalf("%d %s", code, body)
	}
	// Default: the seven days up to today, by day, stations in scope only.
	if got := rowsOf(rep); strings.Join(got, ",") != "ys-a 07-15T00 1 0/1/0,ys-a 07-16T00 1 0/1/0" {
		t.Fatalf("default report %v", got)
	}
	if !rep.From.Equal(at(10, 0, 0)) || !rep.To.Equal(at(17, 0, 0)) || rep.By != "day" {
		t.Fatalf("default period %v..%v by %s", rep.From, rep.To, rep.By)
	}

	_, body = call(t, s.srv, tok, "GET",
		"/api/v1/usage?station=ys-a&from=2025-07-16&to=2025-07-16&by=hour", "")
	json.Unmarshal([]byte(body), &rep)
	if got := rowsOf(rep); len(got) != 1 || got[0] != "ys-a 07-16T09 1 0/1/0" {
		t.Fatalf("one day by hour %v", got)
	}
	_, body = call(t, s.srv, tok, "GET",
		"/api/v1/usage?from=2025-07-15T08:30:00%2B08:00&to=2025-07-16T09:00:00%2B08:00", "")
	json.Unmarshal([]byte(body), &rep)
	if rep.Total.Visits != 0 {
		t.Fatalf("RFC 3339 bounds: the 08:00 hour starts before from, 09:00 is not before to: %s",
			body)
	}

	for _, q := range []string{"from=yesterday", "to=2025-13-01", "by=week",
		"from=2025-07-16&to=2025-07-01", "from=2025-01-01&to=2025-07-01&by=hour"} {
		if code, body := call(t, s.srv, tok, "GET", "/api/v1/usage?"+q, ""); code != 400 ||
			!strings.Contains(body, "error") {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
	if code, _ := call(t, s.srv, tok, "GET", "/api/v1/usage?station=nope", ""); code != 404 {
		t.Errorf("unknown station: %d", code)
	}

	var view StationView
	_, body = call(t, s.srv, tok, "GET", "/api/v1/stations/ys-a", "")
	if json.Unmarshal([]byte(body), &view) != nil || view.Occupancy == nil ||
		view.Occupancy.Source != "estimate" {
		t.Fatalf("station view %s", body)
	}
}
