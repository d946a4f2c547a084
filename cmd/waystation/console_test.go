package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
	"github.com/waystation/waystation/simulators"
)

// The console's tests drive Debian's chromium, headless, from Go. They fail
// when chromium is missing; WAYSTATION_NO_BROWSER=1 skips them, loudly, for
// machines that cannot have a browser.

// browser is one headless chromium shared by the subtests of a test.
type browser struct {
	ctx       context.Context // the browser's first tab
	artifacts string          // where screenshots go
}

// newBrowser starts chromium, or fails the test when there is none.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	if os.Getenv("WAYSTATION_NO_BROWSER") == "1" {
		t.Skip("!!! WAYSTATION_NO_BROWSER=1: the console's browser tests are NOT run !!!")
	}
	path := os.Getenv("WAYSTATION_CHROMIUM")
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path != "" {
			break
		}
		path, _ = exec.LookPath(name)
	}
	if path == "" {
		t.Fatal("no chromium to test the console with: apt-get install chromium (or set " +
			"WAYSTATION_CHROMIUM to a Chrome binary; WAYSTATION_NO_BROWSER=1 skips these tests)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithErrorf(func(string, ...any) {}))
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium %s: %v", path, err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return &browser{ctx: ctx, artifacts: artifactsDir(t)}
}

// tab opens a tab; fresh gives it a browser context of its own (its own
// cookies: another person signed in).
func (b *browser) tab(t *testing.T, fresh bool) context.Context {
	t.Helper()
	var opts []chromedp.ContextOption
	if fresh {
		opts = append(opts, chromedp.WithNewBrowserContext())
	}
	ctx, cancel := chromedp.NewContext(b.ctx, opts...)
	t.Cleanup(cancel)
	// The tab lives as long as the context of its first run: open it here,
	// without the deadline of one step.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return ctx
}

// run runs browser steps with a deadline.
func run(t *testing.T, ctx context.Context, within time.Duration, what string,
	steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one browser action that returns a value, with a deadline.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshot saves the whole page as artifacts/console/NAME.png, or only
// what the window shows when the page is long.
func (b *browser) screenshot(t *testing.T, ctx context.Context, name string, short ...bool) {
	t.Helper()
	shot := chromedp.FullScreenshot(100)
	if len(short) > 0 && short[0] {
		shot = chromedp.CaptureScreenshot()
	}
	png := get(t, ctx, "screenshot "+name, shot)
	file := filepath.Join(b.artifacts, name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", file)
}

// artifactsDir is $WAYSTATION_ARTIFACTS/console, or artifacts/console at
// the top of the module.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WAYSTATION_ARTIFACTS")
	if dir == "" {
		wd, _ := os.Getwd()
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(d, "artifacts")
				break
			}
			if filepath.Dir(d) == d {
				dir = filepath.Join(wd, "artifacts")
				break
			}
		}
	}
	dir = filepath.Join(dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// signIn signs a tab in with an operator token through the sign-in form.
func signIn(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	run(t, ctx, 15*time.Second, "sign in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("board")),
	)
}

// textOf reads the text of the first node matching sel.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return strings.TrimSpace(get(t, ctx, "read "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// TestConsole drives the console in headless chromium against serve --demo.
func TestConsole(t *testing.T) {
	b := newBrowser(t)
	start := time.Now()
	ts := startServer(t, func(o *serveOptions) { o.demo = true })
	var stations []devices.Station
	eventually(t, 15*time.Second, "the demo county is registered", func() bool {
		return ts.api(t, "GET", "/api/v1/stations", nil, &stations) == 200 && len(stations) == 129
	})
	t.Logf("demo county up after %v", time.Since(start).Round(time.Millisecond))

	desk := b.tab(t, false)
	t.Run("sign in", func(t *testing.T) {
		// A wrong token is refused with a message, and no cookie is set.
		run(t, desk, 15*time.Second, "wrong token",
			chromedp.Navigate(ts.url+"/map"),
			chromedp.WaitVisible(chromedp.ID("token")),
			chromedp.SendKeys(chromedp.ID("token"), "wst_not-a-token"),
			chromedp.Submit(chromedp.ID("token")),
			chromedp.WaitVisible(chromedp.CSS("p.error")),
		)
		if msg := textOf(t, desk, "p.error"); !strings.Contains(msg, "not an operator's token") {
			t.Fatalf("wrong token: error %q", msg)
		}
		b.screenshot(t, desk, "signin-refused")
		signIn(t, desk, ts.url, ts.token)
		if who := textOf(t, desk, ".who span"); !strings.Contains(who, "admin") {
			t.Fatalf("signed in as %q", who)
		}
		b.screenshot(t, desk, "alerts-board")

		// From the keyboard: the first Tab reaches the skip link, Enter
		// moves on to the page's content, the next Tab to its first control.
		run(t, desk, 15*time.Second, "keyboard",
			chromedp.Navigate(ts.url+"/list"),
			chromedp.WaitVisible(chromedp.CSS("table.stations")),
			chromedp.KeyEvent(kb.Tab),
		)
		if f := get(t, desk, "focus", chromedp.Evaluate[string](`document.activeElement.textContent`)); f != "Skip to content" {
			t.Errorf("the first Tab focuses %q", f)
		}
		run(t, desk, 15*time.Second, "skip", chromedp.KeyEvent(kb.Enter), chromedp.KeyEvent(kb.Tab))
		if f := get(t, desk, "focus", chromedp.Evaluate[string](`document.activeElement.name`)); f != "problem" {
			t.Errorf("after skipping, Tab focuses %q, want the first filter", f)
		}
	})

	t.Run("map shows every demo station", func(t *testing.T) {
		run(t, desk, 15*time.Second, "map",
			chromedp.Navigate(ts.url+"/map"),
			chromedp.WaitVisible(chromedp.ID("county-map")),
		)
		ids := get(t, desk, "dots", chromedp.Evaluate[[]string](mapStations))
		seen := map[string]bool{}
		for _, id := range ids {
			seen[id] = true
		}
		for _, st := range stations {
			if !seen[st.ID] {
				t.Errorf("station %s is not on the map", st.ID)
			}
		}
		if len(ids) != len(stations) {
			t.Errorf("%d dots on the map for %d stations", len(ids), len(stations))
		}
		// Every dot lies inside the drawing.
		outside := get(t, desk, "dots inside", chromedp.Evaluate[int](`(() => {
			const r = document.querySelector("#county-map").getBoundingClientRect();
			return Array.from(document.querySelectorAll("#county-map a.dot > :is(circle, rect, polygon)"))
				.filter(e => { const b = e.getBoundingClientRect();
					return b.left < r.left || b.right > r.right || b.top < r.top || b.bottom > r.bottom;
				}).length; })()`))
		if outside > 0 {
			t.Errorf("%d dots drawn outside the map", outside)
		}
		b.screenshot(t, desk, "map")
	})

	t.Run("station page shows twin values", func(t *testing.T) {
		// Wait for the demo AC of the first station to report.
		ac := stations[0].ID + "-ac"
		var v controller.DeviceView
		// Registering the county hashes 345 secrets: slow on a busy machine.
		eventually(t, 60*time.Second, ac+" reports", func() bool {
			return ts.api(t, "GET", "/api/v1/devices/"+ac, nil, &v) == 200 && v.Twin != nil &&
				len(v.Twin.State) > 0
		})
		run(t, desk, 15*time.Second, "station page",
			chromedp.Navigate(ts.url+"/stations/"+stations[0].ID),
			chromedp.WaitVisible(chromedp.ID("dev-"+ac)),
		)
		room := textOf(t, desk, `#dev-`+ac+` [data-field="room_c"]`)
		online := textOf(t, desk, `#dev-`+ac+` [data-field="online"]`)
		// The page shows the twin as the API has it, then or since.
		var after controller.DeviceView
		ts.api(t, "GET", "/api/v1/devices/"+ac, nil, &after)
		want1, want2 := roomOf(t, v), roomOf(t, after)
		if !strings.HasPrefix(room, want1+" ") && !strings.HasPrefix(room, want2+" ") {
			t.Errorf("room on the page %q, twin says %s (then %s)", room, want1, want2)
		}
		if !strings.Contains(online, "online") {
			t.Errorf("AC shown %q, want online", online)
		}
		if m := textOf(t, desk, `[data-field="methods"]`); !strings.Contains(m, "nfc") {
			t.Errorf("door access methods shown as %q", m)
		}
		// Its charts draw the AC's history: room and outdoor temperature, power.
		for _, sel := range []string{
			`#temp-` + ac + ` path[data-series="Room"]`,
			`#temp-` + ac + ` path[data-series="Outdoor"]`,
			`#power-` + ac + ` path[data-series="AC power"]`,
		} {
			n := get(t, desk, "chart "+sel, chromedp.AttributeValue(chromedp.CSS(sel), "data-points"))
			if points, _ := strconv.Atoi(n.Value); points < 1 {
				t.Errorf("%s: %q points drawn", sel, n.Value)
			}
		}
		if sum := textOf(t, desk, `#temp-`+ac+` .summary-text`); !strings.Contains(sum, "Room") {
			t.Errorf("the chart's summary says %q", sum)
		}
		b.screenshot(t, desk, "station")
	})

	t.Run("station buttons ask, then send commands", func(t *testing.T) {
		st := stations[0]
		lock := st.ID + "-lock"
		run(t, desk, 15*time.Second, "unlock",
			chromedp.Navigate(ts.url+"/stations/"+st.ID),
			chromedp.WaitVisible(chromedp.ID("dev-"+lock)),
			// Answer the confirmation as a person would, and keep its question.
			chromedp.Evaluate[chromedp.Void](`window.confirm = q => { window.asked = q; return true; }`),
			chromedp.Click(chromedp.CSS(`#dev-`+lock+` form[action$="/unlock"] button`)),
			chromedp.WaitVisible(chromedp.CSS("p.flash")),
		)
		if flash := textOf(t, desk, "p.flash"); !strings.Contains(flash, "lock.unlock") {
			t.Errorf("after unlocking: %q", flash)
		}
		var cmds []controller.CommandRecord
		ts.api(t, "GET", "/api/v1/commands?station="+st.ID+"&name=lock.unlock", nil, &cmds)
		if len(cmds) != 1 || cmds[0].Device != lock || cmds[0].Issuer != "operator:admin" {
			t.Fatalf("commands after the unlock button: %+v", cmds)
		}
		if row := textOf(t, desk, `tr[data-command="`+cmds[0].ID+`"]`); !strings.Contains(row, lock) {
			t.Errorf("the station page lists the command as %q", row)
		}
		// A declined confirmation sends nothing.
		run(t, desk, 15*time.Second, "declined",
			chromedp.Evaluate[chromedp.Void](`window.confirm = q => false`),
			chromedp.Click(chromedp.CSS(`#dev-`+st.ID+`-ac form[action$="/ac"] button`)),
			chromedp.Sleep(300*time.Millisecond),
		)
		ts.api(t, "GET", "/api/v1/commands?station="+st.ID, nil, &cmds)
		if len(cmds) != 1 {
			t.Errorf("a declined confirmation sent a command: %+v", cmds)
		}
		b.screenshot(t, desk, "station-command-sent")
	})

	t.Run("plan page shows tomorrow's runs", func(t *testing.T) {
		run(t, desk, 15*time.Second, "plan",
			chromedp.Navigate(ts.url+"/plan"),
			chromedp.WaitVisible(chromedp.CSS("main h1")),
		)
		var plan controller.Plan
		tomorrow := time.Now().In(ts.s.loc).AddDate(0, 0, 1).Format(time.DateOnly)
		ts.api(t, "GET", "/api/v1/plan?date="+tomorrow, nil, &plan)
		rows := get(t, desk, "runs", chromedp.Evaluate[int](
			`document.querySelectorAll("tr[data-run]").length`))
		if len(plan.Runs) == 0 || rows != len(plan.Runs) {
			t.Errorf("the plan page shows %d runs, the API plans %d for %s", rows, len(plan.Runs),
				tomorrow)
		}
		b.screenshot(t, desk, "plan", true)
	})

	t.Run("alerts board shows a new alert live, and acknowledges it", func(t *testing.T) {
		// A simulated AED of our own at a demo station, to open its cabinet.
		st := stations[1]
		id := st.ID + "-aed9"
		var added controller.NewDevice
		if code := ts.api(t, "POST", "/api/v1/devices", map[string]any{
			"id": id, "station": st.ID, "kind": "aed"}, &added); code != http.StatusCreated {
			t.Fatalf("register %s: %d", id, code)
		}
		aed := simulators.NewDevice(simulators.DeviceSpec{Station: st.ID, Device: id,
			Kind: schemas.KindAED, Secret: added.Secret}, simulators.DeviceOptions{
			Broker: "tcp://" + ts.mqtt, Seed: 7})
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- aed.Run(ctx) }()
		t.Cleanup(func() {
			stop()
			<-done
		})
		eventually(t, 30*time.Second, id+" online", aed.Connected)

		run(t, desk, 15*time.Second, "board",
			chromedp.Navigate(ts.url+"/"),
			chromedp.WaitVisible(chromedp.ID("board")),
			chromedp.Evaluate[chromedp.Void](`window.samePage = true`),
		)
		// The board follows the event stream, not a timer.
		get(t, desk, "stream", chromedp.Poll[bool](`document.body.dataset.stream === "live"`))
		if err := aed.OpenCabinet(); err != nil {
			t.Fatal(err)
		}
		sel := `li.alert[data-rule="aed.cabinet_opened"][data-device="` + id + `"]`
		run(t, desk, 30*time.Second, "the alert appears", chromedp.WaitVisible(chromedp.CSS(sel)))
		if !get(t, desk, "no reload", chromedp.Evaluate[bool](`window.samePage === true`)) {
			t.Error("the page reloaded to show the alert")
		}
		if level := textOf(t, desk, sel+" .badge"); !strings.Contains(level, "Critical") {
			t.Errorf("the opened AED cabinet shows as %q", level)
		}
		// A new critical alert sounds the alarm and flashes the title.
		get(t, desk, "alarm", chromedp.Poll[bool](
			`Number(document.body.dataset.alarmed || 0) > 0 && document.title.includes("CRITICAL")`))
		b.screenshot(t, desk, "alerts-board-live")

		alertID := get(t, desk, "alert id", chromedp.AttributeValue(chromedp.CSS(sel), "data-alert")).Value
		run(t, desk, 15*time.Second, "acknowledge",
			chromedp.SendKeys(chromedp.CSS(sel+` input[name="note"]`), "crew 3 on the way"),
			chromedp.Click(chromedp.CSS(sel+` form.ack button`)),
			chromedp.WaitVisible(chromedp.CSS(sel+`[data-state="acknowledged"]`)),
		)
		var al controller.Alert
		if code := ts.api(t, "GET", "/api/v1/alerts/"+alertID, nil, &al); code != 200 ||
			al.State != controller.AlertAcknowledged || al.AckedBy != "admin" ||
			al.AckNote != "crew 3 on the way" {
			t.Fatalf("after acknowledging on the page, the API has %d %+v", code, al)
		}
		b.screenshot(t, desk, "alerts-board-acknowledged")
	})

	t.Run("monitor sees only its organisation", func(t *testing.T) {
		mine, other := stations[0], stations[0]
		for _, st := range stations {
			if st.Org != "" && st.Org != mine.Org {
				other = st
				break
			}
		}
		if mine.Org == "" || other.Org == mine.Org {
			t.Fatalf("the demo county has no two organisations: %+v %+v", mine, other)
		}
		var added struct {
			Token string `json:"token"`
		}
		if code := ts.api(t, "POST", "/api/v1/operators", map[string]any{
			"name": "night-monitor", "role": "monitor", "orgs": []string{mine.Org},
		}, &added); code != http.StatusCreated {
			t.Fatalf("add monitor: %d", code)
		}
		tab := b.tab(t, true)
		signIn(t, tab, ts.url, added.Token)

		// The map shows only the monitor's stations.
		run(t, tab, 15*time.Second, "monitor's map",
			chromedp.Navigate(ts.url+"/map"),
			chromedp.WaitVisible(chromedp.ID("county-map")),
		)
		ids := get(t, tab, "monitor's dots", chromedp.Evaluate[[]string](mapStations))
		want := 0
		for _, st := range stations {
			if st.Org == mine.Org {
				want++
			}
		}
		if len(ids) != want {
			t.Errorf("monitor of %s sees %d stations on the map, want %d", mine.Org, len(ids), want)
		}
		// Its alerts board lists only its organisation's alerts.
		run(t, tab, 15*time.Second, "monitor's board",
			chromedp.Navigate(ts.url+"/"),
			chromedp.WaitVisible(chromedp.ID("board")),
		)
		onBoard := get(t, tab, "board stations", chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll("li.alert")).map(li => li.dataset.station)`))
		orgOf := map[string]string{}
		for _, st := range stations {
			orgOf[st.ID] = st.Org
		}
		for _, id := range onBoard {
			if orgOf[id] != mine.Org {
				t.Errorf("monitor of %s sees an alert of %s (%s)", mine.Org, id, orgOf[id])
			}
		}
		for _, id := range ids {
			if id == other.ID {
				t.Errorf("monitor of %s sees %s of %s on the map", mine.Org, other.ID, other.Org)
			}
		}

		// Another organisation's station page is refused.
		resp := get(t, tab, "other station", chromedp.NavigateResponse(ts.url+"/stations/"+other.ID))
		if resp.Status != http.StatusForbidden {
			t.Errorf("other organisation's station page: status %d, want 403", resp.Status)
		}
		if msg := textOf(t, tab, "p.error"); !strings.Contains(msg, "outside your scope") {
			t.Errorf("other organisation's station: %q", msg)
		}
		if body := textOf(t, tab, "main"); strings.Contains(body, other.ID+"-ac") {
			t.Errorf("the refusal shows the station's devices: %q", body)
		}
		b.screenshot(t, tab, "monitor-refused")
		// Its own station opens.
		run(t, tab, 15*time.Second, "own station",
			chromedp.Navigate(ts.url+"/stations/"+mine.ID),
			chromedp.WaitVisible(chromedp.ID("st-devices")),
		)
		// A monitor may switch the AC, not unlock the door.
		forms := get(t, tab, "buttons", chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll("main form")).map(f => f.getAttribute("action"))`))
		if !slices.Contains(forms, "/stations/"+mine.ID+"/ac") ||
			slices.Contains(forms, "/stations/"+mine.ID+"/unlock") {
			t.Errorf("a monitor's station page has the forms %v", forms)
		}
		// Nor may it post the unlock form by hand, with a valid form token.
		answer := get(t, tab, "unlock by hand", chromedp.Evaluate[string](fmt.Sprintf(`fetch(
			"/stations/%s/unlock", {method: "POST", body: new URLSearchParams({
				csrf: document.querySelector("input[name=csrf]").value, device: "%s-lock"})})
			.then(r => r.text().then(b => r.status + " " + b))`, mine.ID, mine.ID), awaitPromise))
		if !strings.HasPrefix(answer, "403") || !strings.Contains(answer, "role, monitor, may not") {
			t.Errorf("a monitor posting the unlock form: %.200q, want 403 for its role", answer)
		}

		// The API refuses the same, with the token and with the session.
		req, _ := http.NewRequest("GET", ts.url+"/api/v1/stations/"+other.ID, nil)
		req.Header.Set("Authorization", "Bearer "+added.Token)
		if code := httpCode(t, req); code != http.StatusForbidden {
			t.Errorf("API with the monitor's token: %d, want 403", code)
		}
		fromPage := get(t, tab, "API from the page", chromedp.Evaluate[string](fmt.Sprintf(
			`fetch("/api/v1/stations/%s").then(r => String(r.status))`, other.ID), awaitPromise))
		if !strings.HasPrefix(fromPage, "403") {
			t.Errorf("API with the monitor's session: %q, want 403", fromPage)
		}
	})

	t.Run("phone shows the alerts board without sideways scrolling", func(t *testing.T) {
		phone := b.tab(t, false)
		run(t, phone, 20*time.Second, "phone board",
			chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile),
			chromedp.Navigate(ts.url+"/"),
			chromedp.WaitVisible(chromedp.ID("board")),
		)
		scrollW := get(t, phone, "width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		clientW := get(t, phone, "viewport", chromedp.Evaluate[int](`document.documentElement.clientWidth`))
		if clientW != 390 || scrollW > clientW {
			t.Errorf("phone: page %d px wide in a %d px viewport", scrollW, clientW)
		}
		b.screenshot(t, phone, "phone-alerts-board")
		// The other pages fit too (tables scroll inside their own frame).
		for _, page := range []string{"/map", "/stations/" + stations[0].ID} {
			run(t, phone, 20*time.Second, "phone "+page, chromedp.Navigate(ts.url+page))
			w := get(t, phone, "width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
			if w > 390 {
				t.Errorf("phone: %s is %d px wide", page, w)
			}
		}
		b.screenshot(t, phone, "phone-station")
	})
}

// mapStations lists the stations drawn on the county map.
const mapStations = `Array.from(document.querySelectorAll("#county-map a.dot")).map(a => a.dataset.station)`

func awaitPromise(p *runtime.EvaluateParams) { p.AwaitPromise = new(true) }

// roomOf is an AC twin's room temperature as the console writes it.
func roomOf(t *testing.T, v controller.DeviceView) string {
	t.Helper()
	var st schemas.ACState
	if v.Twin == nil || json.Unmarshal(v.Twin.State, &st) != nil {
		t.Fatalf("no AC state in %+v", v.Twin)
	}
	if st.RoomC == math.Trunc(st.RoomC) {
		return fmt.Sprintf("%.0f", st.RoomC)
	}
	return fmt.Sprintf("%.1f", st.RoomC)
}

func httpCode(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
