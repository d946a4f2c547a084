package console

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// rig is a console and the API on one test server, over a real bbolt file.
type rig struct {
	alerts   *controller.Alerts
	usage    *controller.Usage
	db       *bolt.DB
	reg      *devices.Registry
	ops      *controller.Operators
	sessions *controller.Sessions
	con      *Console
	srv      *httptest.Server
	now      time.Time
}

func newRig(t testing.TB) *rig {
	t.Helper()
	db, err := devices.OpenDB(filepath.Join(t.TempDir(), "waystation.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &rig{db: db, now: time.Date(2025, 7, 21, 3, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return r.now }
	if r.reg, err = devices.NewRegistry(db, devices.RegistryOptions{Now: clock}); err != nil {
		t.Fatal(err)
	}
	twins, err := devices.NewTwins(db, devices.TwinsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.ops, err = controller.NewOperators(db, clock); err != nil {
		t.Fatal(err)
	}
	if r.sessions, err = controller.NewSessions(db, r.ops, time.Hour, clock); err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation("Asia/Shanghai")
	if r.alerts, err = controller.NewAlerts(controller.AlertOptions{DB: db, Registry: r.reg,
		Twins: twins, Location: loc, Now: clock}); err != nil {
		t.Fatal(err)
	}
	if r.usage, err = controller.NewUsage(controller.UsageOptions{DB: db, Location: loc,
		Now: clock}); err != nil {
		t.Fatal(err)
	}
	prom := prometheus.NewRegistry()
	r.con, err = New(Options{Registry: r.reg, Twins: twins, Operators: r.ops, Sessions: r.sessions,
		Alerts: r.alerts, Usage: r.usage, Location: loc, Now: clock, Registerer: prom})
	if err != nil {
		t.Fatal(err)
	}
	api, err := controller.NewAPI(controller.APIOptions{Registry: r.reg, Twins: twins,
		Operators: r.ops, Sessions: r.sessions, Location: loc, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/", r.con)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)

	for _, st := range []devices.Station{
		{ID: "ys-001", Name: "Liushipu", Lat: 32.6, Lon: 116.2, Org: "county-union", Hours: "24h"},
		{ID: "ys-002", Name: "Huaihe Rd", Lat: 32.7, Lon: 116.3, Org: "fuel-east", Hours: "24h"},
		{ID: "ys-003", Name: "No owner", Lat: 32.65, Lon: 116.25, Hours: "06:00-22:00"},
	} {
		if _, err := r.reg.AddStation(st); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []devices.Device{
		{ID: "ys-001-ac", Station: "ys-001", Kind: schemas.KindAC},
		{ID: "ys-001-aed", Station: "ys-001", Kind: schemas.KindAED},
		{ID: "ys-002-aed", Station: "ys-002", Kind: schemas.KindAED},
	} {
		if _, _, err := r.reg.AddDevice(d); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// operator adds an operator and returns its token.
func (r *rig) operator(t testing.TB, name, role string, orgs ...string) string {
	t.Helper()
	token, _, err := r.ops.Issue(controller.Operator{Name: name, Role: role, Orgs: orgs})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// browser is an HTTP client with cookies that does not follow redirects,
// sending the Origin a browser sends.
type browser struct {
	t   *testing.T
	r   *rig
	c   *http.Client
	org string // Origin header
}

func (r *rig) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, r: r, org: r.srv.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.r.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method == http.MethodPost && b.org != "" {
		req.Header.Set("Origin", b.org)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

func (b *browser) signIn(token string) {
	b.t.Helper()
	resp, body := b.do("POST", "/signin", url.Values{"token": {token}, "next": {"/map"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/map" {
		b.t.Fatalf("sign in: %d %s", resp.StatusCode, body)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

func TestSignIn(t *testing.T) {
	r := newRig(t)
	token := r.operator(t, "night-desk", controller.RoleMonitor, "county-union")
	b := r.browser(t)

	// Signed out: every page leads to the sign-in form, keeping the way back.
	resp, _ := b.do("GET", "/stations/ys-001", nil)
	if resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/signin?next=%2Fstations%2Fys-001" {
		t.Fatalf("signed out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A wrong token, or a form from another site, sets no cookie.
	resp, body := b.do("POST", "/signin", url.Values{"token": {"wst_wrong"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not an operator") {
		t.Fatalf("wrong token: %d %s", resp.StatusCode, body)
	}
	b.org = "http://evil.example"
	resp, _ = b.do("POST", "/signin", url.Values{"token": {token}})
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) > 0 {
		t.Fatalf("sign in from another site: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	b.org = r.srv.URL

	// The cookie is HttpOnly and SameSite=Strict, and is no token.
	resp, _ = b.do("POST", "/signin", url.Values{"token": {token}, "next": {"//evil.example/"}})
	if resp.Header.Get("Location") != "/" {
		t.Fatalf("sign in redirects to %q, want / for a foreign next", resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == controller.SessionCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode ||
		cookie.Value == token || strings.Contains(cookie.Value, token) {
		t.Fatalf("session cookie %+v", cookie)
	}
	// Nothing stored holds the cookie value.
	r.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if strings.Contains(string(k)+string(v), cookie.Value) {
					t.Errorf("bucket %s keeps the session cookie's value", name)
				}
				return nil
			})
		})
	})

	// Signed in, the board shows; signing out needs the form's CSRF token.
	resp, page := b.do("GET", "/", nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "night-desk") {
		t.Fatalf("board: %d\n%s", resp.StatusCode, page)
	}
	resp, _ = b.do("POST", "/signout", url.Values{"csrf": {"forged"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign out with a forged CSRF token: %d", resp.StatusCode)
	}
	resp, _ = b.do("POST", "/signout", url.Values{"csrf": {csrfOf(t, page)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if _, _, err := r.sessions.Lookup(cookie.Value); err == nil {
		t.Fatal("the session still works after signing out")
	}
	resp, _ = b.do("GET", "/", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after sign out: %d", resp.StatusCode)
	}
	if n := testutil.ToFloat64(r.con.signIns.WithLabelValues("refused")); n != 1 {
		t.Errorf("refused sign-ins counted %v, want 1", n)
	}
}

func TestScope(t *testing.T) {
	r := newRig(t)
	monitor := r.operator(t, "union-desk", controller.RoleMonitor, "county-union")
	b := r.browser(t)
	b.signIn(monitor)

	_, page := b.do("GET", "/map", nil)
	if !strings.Contains(page, `data-station="ys-001"`) || strings.Contains(page, `data-station="ys-002"`) ||
		strings.Contains(page, `data-station="ys-003"`) {
		t.Fatalf("the monitor's map shows other organisations' stations:\n%s", page)
	}
	_, page = b.do("GET", "/list?sort=name&dir=desc", nil)
	if strings.Contains(page, "Huaihe") || !strings.Contains(page, "Liushipu") {
		t.Fatalf("the monitor's list:\n%s", page)
	}
	for _, path := range []string{"/stations/ys-002", "/stations/ys-003"} {
		resp, page := b.do("GET", path, nil)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "outside your scope") {
			t.Errorf("%s: %d\n%s", path, resp.StatusCode, page)
		}
	}
	resp, page := b.do("GET", "/stations/ys-001", nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "ys-001-ac") {
		t.Fatalf("own station: %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := b.do("GET", "/stations/ys-404", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown station: %d", resp.StatusCode)
	}

	// The API takes the session for reading, with the same scope, and never
	// for a change.
	if resp, _ := b.do("GET", "/api/v1/stations/ys-001", nil); resp.StatusCode != 200 {
		t.Errorf("API read with the session: %d", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/api/v1/stations/ys-002", nil); resp.StatusCode != 403 {
		t.Errorf("API read of another organisation with the session: %d", resp.StatusCode)
	}
	resp, _ = b.do("POST", "/api/v1/stations", url.Values{"x": {"y"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API change with the session alone: %d, want 401", resp.StatusCode)
	}

	// A revoked operator's session ends at once.
	if _, err := r.ops.Revoke("union-desk"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := b.do("GET", "/map", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("revoked operator's page: %d", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/api/v1/stations", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("revoked operator's API read: %d", resp.StatusCode)
	}
}

func TestSessionsLastAndEnd(t *testing.T) {
	r := newRig(t)
	token := r.operator(t, "desk", controller.RoleAdmin, "*")
	value, _, _, err := r.sessions.SignIn(token)
	if err != nil {
		t.Fatal(err)
	}
	// A restart keeps the session.
	again, err := controller.NewSessions(r.db, r.ops, time.Hour, func() time.Time { return r.now })
	if err != nil {
		t.Fatal(err)
	}
	if op, _, err := again.Lookup(value); err != nil || op.Name != "desk" {
		t.Fatalf("after a restart: %v %v", op, err)
	}
	// It ends after its time.
	r.now = r.now.Add(time.Hour)
	if _, _, err := again.Lookup(value); err == nil {
		t.Fatal("the session outlived its time")
	}
	later, err := controller.NewSessions(r.db, r.ops, time.Hour, func() time.Time { return r.now })
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := later.Lookup(value); err == nil {
		t.Fatal("an ended session came back after a restart")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/map": "/map", "/stations/ys-001?x=1": "/stations/ys-001?x=1", "": "/",
		"//evil.example": "/", "https://evil.example/": "/", "/\\evil.example": "/",
		"map": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProject(t *testing.T) {
	rows := []stationRow{
		{Station: devices.Station{Lat: 32.5, Lon: 116.0}},
		{Station: devices.Station{Lat: 32.8, Lon: 116.5}},
		{Station: devices.Station{Lat: 32.6, Lon: 116.2}},
	}
	m := project(rows, rows)
	for _, r := range rows {
		if r.X < mapMargin-0.1 || r.X > m.Width-mapMargin+0.1 || r.Y < 0 || r.Y > m.Height {
			t.Errorf("station at %v,%v drawn at %v,%v outside %vx%v", r.Station.Lat, r.Station.Lon,
				r.X, r.Y, m.Width, m.Height)
		}
	}
	// North is up, east is right.
	if !(rows[1].Y < rows[0].Y && rows[1].X > rows[0].X) {
		t.Errorf("orientation: %+v", rows)
	}
}

func TestDrawChart(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	to := time.Date(2025, 7, 21, 12, 0, 0, 0, loc)
	from := to.Add(-24 * time.Hour)
	var s series
	for at := from.Add(time.Minute); at.Before(to); at = at.Add(30 * time.Second) {
		if at.After(from.Add(10*time.Hour)) && at.Before(from.Add(11*time.Hour)) {
			continue // an hour without data
		}
		s.At = append(s.At, at)
		s.V = append(s.V, 26+float64(at.Hour()%5))
	}
	c := drawChart("t", "Temperature", "°C", from, to, loc, []series{s, {Name: "none"}})
	if c.Empty || len(c.Paths) != 2 || c.Paths[1].D != "" {
		t.Fatalf("chart %+v", c)
	}
	p := c.Paths[0]
	// Five-minute averages: about 288 points, less the missing hour; the
	// gap starts the line anew.
	if p.Points < 270 || p.Points > 289 || strings.Count(p.D, "M") != 2 {
		t.Errorf("%d points, %d moves", p.Points, strings.Count(p.D, "M"))
	}
	if c.YTicks[0].Label != "26" || c.YTicks[len(c.YTicks)-1].Label != "30" {
		t.Errorf("y ticks %+v", c.YTicks)
	}
	// Hour ticks every three hours, local time.
	if len(c.XTicks) != 9 || c.XTicks[0].Label != "12:00" || c.XTicks[1].Label != "15:00" {
		t.Errorf("x ticks %+v", c.XTicks)
	}
	for _, f := range strings.Fields(strings.NewReplacer("M", "", "L", "").Replace(p.D)) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v < 0 || v > chartW {
			t.Fatalf("coordinate %q outside the drawing", f)
		}
	}
	if !strings.Contains(c.Summary, "26 to 30 °C") {
		t.Errorf("summary %q", c.Summary)
	}
	if e := drawChart("e", "x", "W", from, to, loc, nil); !e.Empty {
		t.Errorf("a chart of nothing: %+v", e)
	}
}

// openCabinet has an AED report its cabinet opened, and returns the alert.
func (r *rig) openCabinet(t *testing.T, device string) controller.Alert {
	t.Helper()
	d, err := r.reg.Device(device)
	if err != nil {
		t.Fatal(err)
	}
	r.alerts.Observe(controller.Observation{Device: d, Channel: schemas.ChannelEvent, At: r.now,
		Event: &schemas.Event{Type: schemas.EventCabinetOpened}})
	list := r.alerts.List(controller.AlertFilter{Device: device, Rule: controller.RuleAEDOpened})
	if len(list) != 1 {
		t.Fatalf("alerts of %s: %+v", device, list)
	}
	return list[0]
}

func TestAlertActions(t *testing.T) {
	r := newRig(t)
	mine, other := r.openCabinet(t, "ys-001-aed"), r.openCabinet(t, "ys-002-aed")
	b := r.browser(t)
	b.signIn(r.operator(t, "union-desk", controller.RoleMonitor, "county-union"))

	// The board lists only the monitor's alerts, critical, with its forms.
	_, page := b.do("GET", "/", nil)
	if !strings.Contains(page, `data-alert="`+mine.ID+`"`) ||
		strings.Contains(page, `data-alert="`+other.ID+`"`) {
		t.Fatalf("the monitor's board:\n%s", page)
	}
	if !strings.Contains(page, `action="/alerts/`+mine.ID+`/ack"`) {
		t.Fatalf("no acknowledge form on the board:\n%s", page)
	}
	csrf := csrfOf(t, page)
	_, fragment := b.do("GET", "/alerts/board", nil)
	if !strings.Contains(fragment, `data-alert="`+mine.ID+`"`) || strings.Contains(fragment, "<html") {
		t.Fatalf("the board fragment:\n%s", fragment)
	}

	// Another organisation's alert is refused; a form without the token too.
	resp, _ := b.do("POST", "/alerts/"+other.ID+"/ack", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("acknowledge another organisation's alert: %d", resp.StatusCode)
	}
	resp, _ = b.do("POST", "/alerts/"+mine.ID+"/ack", url.Values{"note": {"x"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("acknowledge without the form token: %d", resp.StatusCode)
	}
	if a, _ := r.alerts.Get(mine.ID); a.State != controller.AlertFiring {
		t.Fatalf("refused forms changed the alert: %+v", a)
	}

	// Acknowledged with a note, the page returns to the board.
	resp, _ = b.do("POST", "/alerts/"+mine.ID+"/ack", url.Values{"csrf": {csrf},
		"note": {" on my way "}, "back": {"/"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/#alert-"+mine.ID {
		t.Fatalf("acknowledge: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if a, _ := r.alerts.Get(mine.ID); a.State != controller.AlertAcknowledged ||
		a.AckedBy != "union-desk" || a.AckNote != "on my way" {
		t.Fatalf("after acknowledging: %+v", a)
	}
	resp, page = b.do("POST", "/alerts/"+mine.ID+"/ack", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "already acknowledged") {
		t.Errorf("acknowledge twice: %d", resp.StatusCode)
	}

	// Silence a station of its own for an hour; not another's.
	resp, _ = b.do("POST", "/silences", url.Values{"csrf": {csrf}, "station": {"ys-002"},
		"for": {"1h"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("silence another organisation's station: %d", resp.StatusCode)
	}
	resp, _ = b.do("POST", "/silences", url.Values{"csrf": {csrf}, "station": {"ys-001"},
		"for": {"1h"}, "reason": {"technician at work"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("silence: %d", resp.StatusCode)
	}
	sil := r.alerts.Silences(nil)
	if len(sil) != 1 || sil[0].Station != "ys-001" || sil[0].CreatedBy != "union-desk" ||
		!sil[0].Expires.Equal(r.now.Add(time.Hour)) {
		t.Fatalf("silences %+v", sil)
	}

	// Resolved, it leaves the board.
	resp, _ = b.do("POST", "/alerts/"+mine.ID+"/resolve", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("resolve: %d", resp.StatusCode)
	}
	if _, page = b.do("GET", "/", nil); strings.Contains(page, `data-alert="`+mine.ID+`"`) {
		t.Errorf("a resolved alert stays on the board")
	}

	// A scheduler may read but not acknowledge: no forms, and a 403.
	s := r.browser(t)
	s.signIn(r.operator(t, "planner", controller.RoleScheduler, "*"))
	_, page = s.do("GET", "/", nil)
	if !strings.Contains(page, `data-alert="`+other.ID+`"`) || strings.Contains(page, "/ack\"") {
		t.Fatalf("the scheduler's board:\n%s", page)
	}
	resp, page = s.do("POST", "/alerts/"+other.ID+"/ack", url.Values{"csrf": {csrfOf(t, page)}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "scheduler") {
		t.Errorf("a scheduler acknowledging: %d", resp.StatusCode)
	}

	// The admin's map marks the station of the open critical alert with
	// its shape and mark, not colour alone.
	a := r.browser(t)
	a.signIn(r.operator(t, "chief", controller.RoleAdmin, "*"))
	_, page = a.do("GET", "/map", nil)
	i := strings.Index(page, `data-station="ys-002"`)
	if i < 0 || !strings.Contains(page[i-80:i], "dot critical") ||
		!strings.Contains(page[i:i+900], "rotate(45") || !strings.Contains(page[i:i+900], "002 !!!") {
		t.Errorf("the map's ys-002:\n%s", page[max(i-80, 0):min(i+900, len(page))])
	}
	_, page = a.do("GET", "/list?problem=aed.cabinet_opened", nil)
	if !strings.Contains(page, "ys-002") || strings.Contains(page, ">ys-001<") {
		t.Errorf("the list filtered by problem:\n%s", page)
	}
}

func TestListVisitsToday(t *testing.T) {
	r := newRig(t)
	r.usage.Visit("ys-002", schemas.MethodNFC, r.now.Add(-time.Minute))
	r.usage.Visit("ys-002", schemas.MethodQR, r.now.Add(-2*time.Minute))
	r.usage.Visit("ys-001", schemas.MethodFace, r.now.Add(-3*time.Minute))
	r.usage.Visit("ys-001", schemas.MethodFace, r.now.Add(-48*time.Hour)) // not today
	b := r.browser(t)
	b.signIn(r.operator(t, "chief", controller.RoleAdmin, "*"))
	_, page := b.do("GET", "/list?sort=visits&dir=desc", nil)
	rows := regexp.MustCompile(`(?s)<tr data-station="([^"]+)">.*?<td>([^<]*)</td>\s*</tr>`).
		FindAllStringSubmatch(page, -1)
	var got []string
	for _, m := range rows {
		got = append(got, m[1]+"="+m[2])
	}
	if strings.Join(got, " ") != "ys-002=2 ys-001=1 ys-003=0" {
		t.Errorf("list by visits today: %v\n%s", got, page)
	}
	if !strings.Contains(page, `aria-sort="descending"`) {
		t.Errorf("the sorted column is not marked")
	}
}
