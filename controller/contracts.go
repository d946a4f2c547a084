package controller

import (
	"time"
)

// The small interfaces below join the controller's parts without making
// them import each other: alerts switch an overheating charger slot off and
// the pre-cooling planner starts ACs through a CommandIssuer; alerts,
// commands and plans tell people through Notifiers.

// CommandRequest asks for one command to one device.
type CommandRequest struct {
	Device string         // device id
	Name   string         // a schemas.Cmd* name
	Args   map[string]any // checked against the contract before sending
	// Issuer is who asked: "operator:NAME", "schedule:RUN-ID" or
	// "rule:RULE-NAME".
	Issuer string
	// TTL is how long the command may wait for the device; zero means the
	// issuer's default.
	TTL time.Duration
	// Reason says why, for the audit log ("slot 3 at 63 °C").
	Reason string
}

// CommandIssuer sends commands and keeps their audit log.
type CommandIssuer interface {
	// IssueCommand records and sends a command; it returns the command's
	// id at once, before the device answers. It fails when the request
	// breaks the contract or names an unknown device.
	IssueCommand(req CommandRequest) (id string, err error)
}

// Notice is one change people are told about: an alert raised, acknowledged
// or resolved, a command answered, a planned run started.
type Notice struct {
	// Type names the change, "alert.raised" or "command.acknowledged".
	Type string `json:"type"`
	// Key is unique per change; a receiver drops a notice whose key it has
	// already seen.
	Key     string    `json:"key"`
	Station string    `json:"station,omitempty"`
	At      time.Time `json:"at"`
	// Data is the changed object (an alert, a command), as JSON.
	Data any `json:"data"`
}

// Notifier takes notices. Notify must return at once: a slow or failing
// receiver never holds up the caller.
type Notifier interface {
	Notify(n Notice)
}

// Notifiers sends each notice to every one of its notifiers.
type Notifiers []Notifier

// Notify implements Notifier.
func (ns Notifiers) Notify(n Notice) {
	for _, x := range ns {
		x.Notify(n)
	}
}
