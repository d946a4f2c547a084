package main

import (
	"net/http"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/controller/console"
)

// consoleParts are the web console and its sessions.
type consoleParts struct {
	sessions *controller.Sessions
	console  *console.Console
}

// openConsole builds the web console and lets the API accept its session
// cookie on read-only calls. It runs after the other parts are open and
// before the API.
func (s *server) openConsole(o *controller.APIOptions) error {
	var err error
	if s.con.sessions, err = controller.NewSessions(s.db, s.ops, 0, s.clock.Now); err != nil {
		return err
	}
	o.Sessions = s.con.sessions
	s.con.console, err = console.New(console.Options{
		Registry: s.devs, Twins: s.twin, Operators: s.ops, Sessions: s.con.sessions,
		Usage: s.acc.usage, Rules: s.acc.rules, AllowLists: s.acc.lists, Commands: s.cmds,
		Planner: s.plan.planner, Alerts: s.al.alerts, History: s.hist.Range,
		Location: s.loc, Now: s.clock.Now, Logger: s.log, Registerer: s.reg,
	})
	return err
}

// handler serves the API under /api/, /healthz and /metrics, and the
// console everywhere else.
func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/", s.api)
	mux.Handle("/healthz", s.api)
	mux.Handle("/metrics", s.api)
	mux.Handle("/", s.con.console)
	return mux
}
