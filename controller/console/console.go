// Package console serves the monitors' web console: server-rendered pages
// for phones and desks, signed in with an operator token, checked with the
// same roles and organisation scopes as the API.
//
// Every page is HTML from html/template; the few live parts (the alerts
// board's event stream, the alarm sound) are one small embedded script, and
// nothing is fetched from outside the server, so the console works without
// internet.
package console

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configures the console. Registry, Twins, Operators and Sessions
// are required; every other part shows on the pages when it is set.
type Options struct {
	Registry  *devices.Registry
	Twins     *devices.Twins
	Operators *controller.Operators
	Sessions  *controller.Sessions
	// Usage, when set, shows visits and occupancy.
	Usage *controller.Usage
	// Rules and AllowLists, when set, show a station's door access rules
	// and whether its terminals hold the current allow-list.
	Rules      *controller.AccessRules
	AllowLists *controller.AllowLists
	// Planner, when set, shows the plan page and stations' runs today.
	Planner *controller.Planner
	// Alerts, when set, fills the alerts board and colours the map.
	Alerts *controller.Alerts
	// History, when set, draws the charts of station pages.
	History HistoryFunc
	// Commands, when set, adds the AC and door buttons of station pages
	// and the commands page.
	Commands *controller.Commands
	// Location is the stations' time zone, in which every time is shown;
	// default time.Local. Now is the controller's clock; default time.Now.
	Location *time.Location
	Now      func() time.Time
	Logger   *slog.Logger
	// Registerer receives the console's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Secure marks the session cookie Secure (served over HTTPS only).
	Secure bool
}

// Console is the web console's HTTP handler.
type Console struct {
	o     Options
	log   *slog.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template

	signIns *prometheus.CounterVec
	denied  *prometheus.CounterVec
}

// New parses the templates and registers the console's metrics.
func New(o Options) (*Console, error) {
	if o.Registry == nil || o.Twins == nil || o.Operators == nil || o.Sessions == nil {
		return nil, errors.New("console: Registry, Twins, Operators and Sessions are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Console{o: o, log: o.Logger.With("component", "console"), mux: http.NewServeMux(),
		pages: map[string]*template.Template{}}
	if err := c.parse(); err != nil {
		return nil, err
	}
	if err := c.metrics(o.Registerer); err != nil {
		return nil, err
	}

	static, _ := fs.Sub(staticFS, "static")
	c.mux.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	c.mux.HandleFunc("GET /signin", c.signInPage)
	c.mux.HandleFunc("POST /signin", c.signIn)
	c.mux.HandleFunc("POST /signout", c.signOut)
	c.page("GET /{$}", controller.PermRead, c.alertsBoard)
	c.page("GET /alerts/board", controller.PermRead, c.alertsFragment)
	c.page("GET /map", controller.PermRead, c.mapPage)
	c.page("GET /list", controller.PermRead, c.listPage)
	c.page("GET /stations/{id}", controller.PermRead, c.stationPage)
	if o.Planner != nil {
		c.page("GET /plan", controller.PermRead, c.planPage)
	}
	if o.Alerts != nil {
		c.page("POST /alerts/{id}/ack", controller.PermAcknowledge, c.ackAlert)
		c.page("POST /alerts/{id}/resolve", controller.PermAcknowledge, c.resolveAlert)
		c.page("POST /silences", controller.PermAcknowledge, c.silenceStation)
		c.page("POST /silences/{id}/remove", controller.PermAcknowledge, c.unsilence)
	}
	if o.Commands != nil {
		c.page("POST /stations/{id}/ac", controller.PermSwitchAC, c.switchAC)
		c.page("POST /stations/{id}/unlock", controller.PermCommand, c.unlockDoor)
		c.page("GET /commands", controller.PermRead, c.commandsPage)
	}
	c.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
	})
	return c, nil
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Scripts and styles come only from the console itself: no inline
	// script runs, nothing loads from elsewhere, no page frames another.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; "+
		"style-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; "+
		"base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

func (c *Console) metrics(reg prometheus.Registerer) error {
	c.signIns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_console_signins_total",
		Help: "Console sign-ins, by result: ok or refused (unknown token).",
	}, []string{"result"})
	c.denied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_console_denied_total",
		Help: "Console pages and actions refused with 403, by reason: role, scope or csrf.",
	}, []string{"reason"})
	for _, r := range []string{"ok", "refused"} {
		c.signIns.WithLabelValues(r)
	}
	for _, r := range []string{controller.DeniedRole, controller.DeniedScope, "csrf"} {
		c.denied.WithLabelValues(r)
	}
	if reg == nil {
		return nil
	}
	for _, m := range []prometheus.Collector{c.signIns, c.denied} {
		if err := reg.Register(m); err != nil {
			return fmt.Errorf("register console metrics: %w", err)
		}
	}
	return nil
}

// view is what every page template gets: the signed-in operator, the
// session's CSRF token for its forms, and the page's own data.
type view struct {
	Title   string
	Nav     string // which menu entry is current
	Op      controller.Operator
	CSRF    string
	TZ      string
	Now     time.Time
	Flash   string
	Error   string
	Can     map[string]bool // by controller.Permission
	Has     map[string]bool // the parts this server runs: commands, alerts, plan
	Data    any
	Refresh bool // the page updates itself from the event stream
}

// request is a signed-in request being served.
type request struct {
	w    http.ResponseWriter
	r    *http.Request
	op   controller.Operator
	sess controller.Session
}

type pageFunc func(rq *request)

// page serves pattern to signed-in operators whose role allows perm; the
// page checks the scope of what it shows. POST pages also need the
// session's CSRF token.
func (c *Console) page(pattern string, perm controller.Permission, f pageFunc) {
	c.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		op, sess, err := c.o.Sessions.FromRequest(r)
		if err != nil {
			if r.Method != http.MethodGet {
				c.fail(w, r, http.StatusUnauthorized, "Your session has ended: sign in again.")
				return
			}
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()),
				http.StatusSeeOther)
			return
		}
		rq := &request{w: w, r: r, op: op, sess: sess}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) || !sess.CheckCSRF(r.PostFormValue("csrf")) {
				c.denied.WithLabelValues("csrf").Inc()
				c.fail(w, r, http.StatusForbidden, "This form is out of date or did not come "+
					"from this console: reload the page and try again.")
				return
			}
		}
		if !op.Can(perm) {
			c.denied.WithLabelValues(controller.DeniedRole).Inc()
			c.failFor(rq, http.StatusForbidden, fmt.Sprintf("Your role, %s, may not do this.",
				op.Role))
			return
		}
		f(rq)
	})
}

// allowStation checks a station against the operator's scope and answers
// 403 when it is outside.
func (c *Console) allowStation(rq *request, st devices.Station) bool {
	if rq.op.InScope(st.Org) {
		return true
	}
	c.denied.WithLabelValues(controller.DeniedScope).Inc()
	owner := "organisation " + st.Org
	if st.Org == "" {
		owner = "no organisation"
	}
	c.failFor(rq, http.StatusForbidden, fmt.Sprintf("Station %s belongs to %s, outside "+
		"your scope (%s).", st.ID, owner, strings.Join(rq.op.Orgs, ", ")))
	return false
}

// sameOrigin refuses a form posted from another site: browsers send Origin
// with every POST, and Sec-Fetch-Site when they know it.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return origin == ""
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// render writes a page with the layout.
func (c *Console) render(rq *request, code int, name string, v view) {
	c.fill(rq, &v)
	c.write(rq.w, code, name, v)
}

// fill gives a view what every page knows: who, their permissions, the
// form token, the time.
func (c *Console) fill(rq *request, v *view) {
	v.Op, v.CSRF, v.TZ, v.Now = rq.op, rq.sess.CSRF, c.o.Location.String(), c.now()
	v.Can = map[string]bool{}
	for _, p := range []controller.Permission{controller.PermAcknowledge,
		controller.PermSchedule, controller.PermRegister, controller.PermSwitchAC,
		controller.PermCommand} {
		v.Can[string(p)] = rq.op.Can(p)
	}
	v.Has = c.has()
}

// fragment writes one named block of a page, for the parts of pages that
// update themselves.
func (c *Console) fragment(rq *request, page, block string, v view) {
	c.fill(rq, &v)
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, block, v); err != nil {
		c.log.Error("render fragment", "page", page, "block", block, "err", err)
		http.Error(rq.w, "the page could not be drawn: "+err.Error(), http.StatusInternalServerError)
		return
	}
	rq.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	rq.w.Header().Set("Cache-Control", "no-store")
	_, _ = buf.WriteTo(rq.w)
}

func (c *Console) write(w http.ResponseWriter, code int, name string, v view) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.log.Error("render page", "page", name, "err", err)
		http.Error(w, "the page could not be drawn: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

// fail answers an error page to someone who may not be signed in.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if op, sess, err := c.o.Sessions.FromRequest(r); err == nil {
		c.failFor(&request{w: w, r: r, op: op, sess: sess}, code, msg)
		return
	}
	c.write(w, code, "error", view{Title: http.StatusText(code), Error: msg,
		TZ: c.o.Location.String(), Now: c.now()})
}

func (c *Console) failFor(rq *request, code int, msg string) {
	c.render(rq, code, "error", view{Title: http.StatusText(code), Error: msg})
}

// has says which optional parts run, for menus and buttons.
func (c *Console) has() map[string]bool {
	return map[string]bool{"commands": c.o.Commands != nil, "history": c.o.History != nil,
		"plan": c.o.Planner != nil, "alerts": c.o.Alerts != nil, "usage": c.o.Usage != nil}
}

func (c *Console) now() time.Time { return c.o.Now().In(c.o.Location) }

// cacheStatic lets browsers keep the embedded files for an hour: they
// change only with the binary.
func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}
