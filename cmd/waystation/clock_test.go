package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/schemas"
)

// TestCLITimesFollowTheServer runs the server on a simulated clock, a
// year back and 60 times faster than the wall clock, in a zone this
// machine is not in (Chatham's +12:45): the CLI shows times in the
// server's zone and "ago" against the server's clock.
func TestCLITimesFollowTheServer(t *testing.T) {
	const zone = "Pacific/Chatham"
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 7, 20, 5, 0, 0, 0, loc)
	if _, off := start.In(time.Local).Zone(); off == 12*3600+45*60 {
		t.Fatalf("this machine's zone has %s's offset: the test cannot tell them apart", zone)
	}
	ts := startServer(t, func(o *serveOptions) {
		o.timeZone, o.start, o.speed = zone, "2025-07-20 05:00", 60
	})

	// Every answer says the server's time and zone.
	req, _ := http.NewRequest("GET", ts.url+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	at, err := time.Parse(time.RFC3339Nano, resp.Header.Get(controller.HeaderTime))
	if err != nil {
		t.Fatalf("%s: %v", controller.HeaderTime, err)
	}
	if _, off := at.Zone(); off != 12*3600+45*60 || at.Before(start) ||
		at.After(start.Add(24*time.Hour)) {
		t.Errorf("%s %v: want a time shortly after %v", controller.HeaderTime, at, start)
	}
	if got := resp.Header.Get(controller.HeaderZone); got != zone {
		t.Errorf("%s %q, want %q", controller.HeaderZone, got, zone)
	}

	secret := ts.register(t, "ys-001", "ys-001-ac", schemas.KindAC)
	d, err := connectDevice(t, ts.mqtt, "ys-001", "ys-001-ac", secret, deviceOpts{})
	if err != nil {
		t.Fatal(err)
	}
	d.publish(t, schemas.ChannelStatus, true,
		`{"online":true,"kind":"ac","firmware":"3.2.1","model":"KFR-35GW","conn":"m1"}`)
	eventually(t, 10*time.Second, "the device is online", func() bool {
		var v controller.DeviceView
		ts.api(t, "GET", "/api/v1/devices/ys-001-ac", nil, &v)
		return v.Twin != nil && v.Twin.Online
	})

	out, err := runCLI("devices", "show", "ys-001-ac", "--server", ts.url, "--token", ts.token)
	if err != nil {
		t.Fatalf("devices show: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^last seen +(\S+ \S+ \+12:45) \((\S+) ago\)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no last seen in +12:45 with an age:\n%s", out)
	}
	seen, err := time.ParseInLocation("2006-01-02 15:04:05 -07:00", m[1], loc)
	if err != nil {
		t.Fatal(err)
	}
	age, err := time.ParseDuration(m[2])
	if err != nil {
		t.Fatal(err)
	}
	// Against this machine's clock the age would be over a year. At 60
	// times the wall clock, an hour is a minute of a slow test.
	if seen.Before(start) || seen.After(start.Add(24*time.Hour)) || age < 0 || age > time.Hour {
		t.Errorf("last seen %v, %v ago: want shortly after %v, minutes ago\n%s", seen, age, start,
			out)
	}
	if !regexp.MustCompile(`(?m)^registered +2025-07-20 0\d:\d\d:\d\d \+12:45$`).MatchString(out) {
		t.Errorf("registered is not shown in the server's zone:\n%s", out)
	}
}

// TestServerClockHeaders reads the clock headers as an older or odd server
// might send them.
func TestServerClockHeaders(t *testing.T) {
	var c serverClock
	if c.location() != time.Local {
		t.Error("before any answer, the zone is not this machine's")
	}
	if d := time.Since(c.now()); d < 0 || d > time.Minute {
		t.Errorf("before any answer, now is %v off this machine's clock", d)
	}

	h := http.Header{}
	h.Set(controller.HeaderTime, "not a time")
	c.observe(h)
	if c.location() != time.Local {
		t.Error("a bad time header changed the zone")
	}

	// No zone name (a server in its machine's unnamed zone): the offset.
	h.Set(controller.HeaderTime, "2025-07-20T05:00:00.5+08:00")
	c.observe(h)
	p := &printer{loc: c.location(), now: c.now}
	if got, want := p.when(time.Date(2025, 7, 19, 21, 0, 0, 0, time.UTC)),
		"2025-07-20 05:00:00 +08:00"; got != want {
		t.Errorf("when %q, want %q", got, want)
	}
	// Now moves on from the answer's time by the wall time since.
	answered := time.Date(2025, 7, 19, 21, 0, 0, 5e8, time.UTC)
	if d := c.now().Sub(answered); d < 0 || d > time.Minute {
		t.Errorf("now is %v past the answer's time", d)
	}

	// A zone by name gives summer time its own offset.
	h.Set(controller.HeaderZone, "Europe/Paris")
	c.observe(h)
	p = &printer{loc: c.location(), now: c.now}
	if got, want := p.when(time.Date(2025, 1, 20, 12, 0, 0, 0, time.UTC)),
		"2025-01-20 13:00:00 +01:00"; got != want {
		t.Errorf("when in winter %q, want %q", got, want)
	}
	// An unknown name falls back to the offset.
	h.Set(controller.HeaderZone, "Nowhere/Atlantis")
	c.observe(h)
	if _, off := time.Now().In(c.location()).Zone(); off != 8*3600 {
		t.Errorf("unknown zone name: offset %d, want +08:00's", off)
	}
}

// TestSimTimeHandler: "sim" comes first among a line's attributes and
// outside the logger's groups, with the zone's offset, so the hour a
// daylight-saving change repeats is logged as two different times.
func TestSimTimeHandler(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC) // 02:30 CEST
	var buf bytes.Buffer
	base := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})
	log := slog.New(newSimTime(base, func() time.Time { return at }, berlin))

	log.With("component", "alerts").WithGroup("req").Info("first", "path", "/x")
	log.Debug("below the level")
	at = at.Add(time.Hour) // 02:30 CET
	log.WithGroup("").With().Info("second")

	want := `level=INFO msg=first sim="2025-10-26 02:30:00 +02:00" component=alerts req.path=/x` + "\n" +
		`level=INFO msg=second sim="2025-10-26 02:30:00 +01:00"` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("logged\n%s\nwant\n%s", got, want)
	}
}
