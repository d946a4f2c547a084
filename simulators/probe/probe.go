// Package probe checks that a device keeps the waystation v1 wire
// contract, watching it through an MQTT broker the way the platform does.
//
// Run subscribes to every topic of one device and, for a while, checks
// each message it sends against the contract; that it keeps a retained
// online status and, when the probe is allowed to have its power cut, a
// last will; that it reports at the interval its status announces; that
// it answers the harmless device.ping correctly and in time; that a
// repeated command id is answered again but not carried out again; and
// that an expired command is dropped. The Report says pass, fail or skip
// for each check, with the evidence of each failure.
//
// # Caveats
//
// The probe needs an identity that may subscribe to the device's topics and
// publish on its cmd topic: the platform's controller login. It tells a
// command carried out twice by the telemetry device.ping makes the device
// send; a device that also sends telemetry whenever something changes may
// be caught out by chance, so a suspicion is tried twice before it fails.
// A last will can only be seen when the connection dies: without
// Options.PowerCycle that check is skipped.
package probe

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/waystation/waystation/schemas"
)

// Options configure a probe. Broker, Device and an identity are needed.
type Options struct {
	Broker   string // tcp://host:1883, ws://…, ssl://…
	Username string // an identity that may watch the device and command it
	Password string
	TLS      *tls.Config

	Device  string
	Station string // learned from the device's topics when empty

	// Duration is how long to watch the device; default 5m. The checks of
	// commands may take a few telemetry intervals more.
	Duration time.Duration
	// Speed is how fast the device's clock runs against the wall clock, for
	// a simulated device on an accelerated clock; default 1.
	Speed float64
	// AnswerWithin is how long a command's answer may take; default 10s.
	AnswerWithin time.Duration

	// PowerCycle, when set, is called once the command checks are done to
	// have the device lose power (or its network) without a goodbye; the
	// probe then waits WillWithin for its last will and BackWithin for it
	// to come back. Nil skips the last-will check.
	PowerCycle func(ctx context.Context) error
	WillWithin time.Duration // default 90s: a broker notices a dead link after 1.5 keep-alives
	BackWithin time.Duration // default 3m

	// Progress, when set, hears a line about each step as it starts.
	Progress func(string)
	Logger   *slog.Logger
}

// Defaults of Options.
const (
	DefaultDuration     = 5 * time.Minute
	DefaultAnswerWithin = 10 * time.Second
	DefaultWillWithin   = 90 * time.Second
	DefaultBackWithin   = 3 * time.Minute
)

// Figures of the checks.
const (
	statusWait      = 2 * time.Second // for the retained status after subscribing
	lateFactor      = 1.5             // a gap over 1.5 intervals (plus slack) is a missed report
	lateSlack       = time.Second     // network and scheduling
	minWindow       = 200 * time.Millisecond
	maxWindow       = 3 * time.Second
	maxEvidence     = 6   // lines of evidence kept per check
	maxPayloadShown = 160 // bytes of a payload shown in evidence
	defaultInterval = 30 * time.Second
)

// ErrNotSeen is returned when the device sent nothing at all while the
// probe watched.
var ErrNotSeen = errors.New("device not seen")

// Result is the outcome of a check.
type Result string

// Results.
const (
	Pass Result = "PASS"
	Fail Result = "FAIL"
	Skip Result = "SKIP"
)

// Check is one check of a report.
type Check struct {
	Name     string   `json:"name"`
	Result   Result   `json:"result"`
	Summary  string   `json:"summary"`
	Evidence []string `json:"evidence,omitempty"` // for a failure: what was seen
}

// Report is what a probe found.
type Report struct {
	Device    string        `json:"device"`
	Station   string        `json:"station"`
	Kind      schemas.Kind  `json:"kind"`
	Firmware  string        `json:"firmware,omitempty"`
	Model     string        `json:"model,omitempty"`
	IntervalS int           `json:"interval_s,omitempty"`
	Started   time.Time     `json:"started"`
	Watched   time.Duration `json:"-"`
	WatchedS  float64       `json:"watched_s"`
	Messages  int           `json:"messages"`
	Checks    []Check       `json:"checks"`
	Passed    bool          `json:"passed"` // no check failed
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Result == Fail {
			return true
		}
	}
	return false
}

// Check returns the check with name, and whether there is one.
func (r *Report) Check(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "probe of %s", r.Device)
	if r.Station != "" {
		fmt.Fprintf(&b, " at station %s", r.Station)
	}
	if r.Kind != "" {
		fmt.Fprintf(&b, " (%s", r.Kind)
		if r.Model != "" {
			fmt.Fprintf(&b, " %s", r.Model)
		}
		if r.Firmware != "" {
			fmt.Fprintf(&b, ", firmware %s", r.Firmware)
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, ": %d messages in %v\n\n", r.Messages, r.Watched.Round(100*time.Millisecond))
	failed := 0
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-4s  %-17s %s\n", c.Result, c.Name, c.Summary)
		for _, e := range c.Evidence {
			fmt.Fprintf(&b, "      %17s - %s\n", "", e)
		}
		if c.Result == Fail {
			failed++
		}
	}
	if failed > 0 {
		fmt.Fprintf(&b, "\nFAIL: %d of %d checks failed\n", failed, len(r.Checks))
	} else {
		fmt.Fprintf(&b, "\nPASS: every check passed or was skipped\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Names of the checks, in report order.
const (
	CheckContract = "contract"
	CheckStatus   = "retained status"
	CheckWill     = "last will"
	CheckInterval = "interval"
	CheckSequence = "sequence"
	CheckCommand  = "command"
	CheckRepeat   = "repeated command"
	CheckExpired  = "expired command"
)

// seen is one message the probe received.
type seen struct {
	at       time.Time // wall clock
	topic    schemas.Topic
	payload  []byte
	retained bool
}

// prober is one run of the probe.
type prober struct {
	o      Options
	log    *slog.Logger
	client mqtt.Client
	runID  string

	mu     sync.Mutex // guards msgs
	msgs   []seen
	notify chan struct{} // a message arrived; capacity 1

	station   string
	kind      schemas.Kind
	interval  time.Duration // simulated, as the status announces
	announced bool          // the status gave interval_s
	checks    map[string]Check

	// Spans of wall time whose telemetry is not periodic: right after a
	// ping, and while the power is cut.
	excused [][2]time.Time
	// Ids of commands sent expired; an ok answer to any of them fails.
	expiredIDs []string
}

// Run probes a device and returns its report. It returns an error, and no
// report, only when it cannot watch at all: a bad option, a broker that
// refuses the probe's login, or a device that sent nothing (ErrNotSeen).
func Run(ctx context.Context, o Options) (*Report, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &prober{o: o, log: o.Logger.With("device", o.Device), notify: make(chan struct{}, 1),
		checks: map[string]Check{}, runID: randomID(), station: o.Station}
	if err := p.connect(ctx); err != nil {
		return nil, err
	}
	defer p.client.Disconnect(100)

	started := time.Now()
	deadline := started.Add(o.Duration)
	rep := &Report{Device: o.Device, Started: started}

	p.say("waiting for %s's status", o.Device)
	st, err := p.awaitOnline(ctx, deadline)
	if err != nil {
		return nil, err
	}
	rep.Kind, rep.Firmware, rep.Model, rep.IntervalS = st.Kind, st.Firmware, st.Model, st.IntervalS
	p.kind = st.Kind
	p.interval, p.announced = time.Duration(st.IntervalS)*time.Second, st.IntervalS > 0
	if !p.announced {
		p.say("no interval_s announced: timing %s's telemetry", o.Device)
		p.interval = p.observedInterval(ctx) // for pacing the checks only
	}

	p.checkRetained(ctx, st.Conn)
	p.say("sending device.ping")
	p.checkCommand(ctx)
	p.say("repeating a command id")
	p.checkRepeat(ctx)
	p.say("sending an expired command")
	p.checkExpired(ctx)
	if o.PowerCycle != nil {
		p.checkWill(ctx)
	} else {
		p.set(CheckWill, Skip, "not checked: the probe may not cut the device's power "+
			"(waystation probe --power-cycle)")
	}

	// The interval check needs a stretch of undisturbed reports after the
	// last command or power cut.
	for _, e := range p.excused {
		deadline = laterOf(deadline, e[1].Add(p.late()+p.period()/2))
	}
	if left := time.Until(deadline); left > 0 {
		p.say("watching until %s", deadline.Format(time.TimeOnly))
		select {
		case <-ctx.Done():
		case <-time.After(left):
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	rep.Station = p.station
	rep.Watched = time.Since(started)
	rep.WatchedS = rep.Watched.Seconds()
	p.checkContract()
	p.checkSequence()
	p.checkInterval(started)
	p.checkExpiredAnswers()
	rep.Messages = len(p.deviceMessages())
	for _, name := range []string{CheckContract, CheckStatus, CheckWill, CheckInterval,
		CheckSequence, CheckCommand, CheckRepeat, CheckExpired} {
		if c, ok := p.checks[name]; ok {
			rep.Checks = append(rep.Checks, c)
		}
	}
	rep.Passed = !rep.Failed()
	return rep, nil
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Broker == "":
		return o, errors.New("probe: no broker")
	case !schemas.ValidID(o.Device):
		return o, fmt.Errorf("probe: device id %q: want [a-z0-9][a-z0-9-]{0,31}", o.Device)
	case o.Station != "" && !schemas.ValidID(o.Station):
		return o, fmt.Errorf("probe: station id %q: want [a-z0-9][a-z0-9-]{0,31}", o.Station)
	case o.Speed < 0:
		return o, fmt.Errorf("probe: speed %g: want a positive number", o.Speed)
	}
	if o.Duration <= 0 {
		o.Duration = DefaultDuration
	}
	if o.Speed == 0 {
		o.Speed = 1
	}
	if o.AnswerWithin <= 0 {
		o.AnswerWithin = DefaultAnswerWithin
	}
	if o.WillWithin <= 0 {
		o.WillWithin = DefaultWillWithin
	}
	if o.BackWithin <= 0 {
		o.BackWithin = DefaultBackWithin
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// connect logs in and subscribes to every topic of the device.
func (p *prober) connect(ctx context.Context) error {
	p.client = newClient(p.o, "probe-"+p.runID)
	if err := waitToken(ctx, p.client.Connect(), p.o.AnswerWithin); err != nil {
		return fmt.Errorf("probe: connect to %s as %q: %w", p.o.Broker, p.o.Username, err)
	}
	station := "+"
	if p.o.Station != "" {
		station = p.o.Station
	}
	filter := schemas.Prefix + station + "/" + p.o.Device + "/#"
	tok := p.client.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		tp, err := schemas.ParseTopic(m.Topic())
		if err != nil {
			return
		}
		p.mu.Lock()
		p.msgs = append(p.msgs, seen{at: time.Now(), topic: tp,
			payload: append([]byte(nil), m.Payload()...), retained: m.Retained()})
		p.mu.Unlock()
		select {
		case p.notify <- struct{}{}:
		default:
		}
	})
	if err := waitToken(ctx, tok, p.o.AnswerWithin); err != nil {
		p.client.Disconnect(0)
		return fmt.Errorf("probe: subscribe to %s: %w", filter, err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for _, code := range st.Result() {
			if code >= 0x80 {
				p.client.Disconnect(0)
				return fmt.Errorf("probe: the broker refused the subscription to %s: is %q "+
					"the platform's controller login?", filter, p.o.Username)
			}
		}
	}
	return nil
}

// newClient builds an MQTT client for the probe's identity.
func newClient(o Options, id string) mqtt.Client {
	opts := mqtt.NewClientOptions().AddBroker(o.Broker).SetClientID(id).
		SetUsername(o.Username).SetPassword(o.Password).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(o.AnswerWithin).SetKeepAlive(30 * time.Second).
		SetTLSConfig(o.TLS).SetProtocolVersion(4)
	return mqtt.NewClient(opts)
}

// awaitOnline waits for the device's status, retained or live, and, when
// it says offline, for the device to come online. A device that sends
// telemetry but no status at all is taken as online, its kind guessed
// from its telemetry; the status check fails it later.
func (p *prober) awaitOnline(ctx context.Context, deadline time.Time) (schemas.Status, error) {
	from := 0
	first := time.Now().Add(statusWait)
	said := false
	var statuses int
	var telemetry [][]byte
	for {
		for _, m := range p.since(from) {
			from++
			p.learnStation(m)
			switch m.topic.Channel {
			case schemas.ChannelTelemetry:
				telemetry = append(telemetry, m.payload)
			case schemas.ChannelStatus:
				statuses++
				st, err := schemas.DecodeStatus(m.payload)
				if err == nil && st.Online {
					return st, nil
				}
			}
		}

		now := time.Now()
		if statuses == 0 && len(telemetry) > 0 && !now.Before(first) {
			if k, ok := guessKind(telemetry); ok {
				p.say("no status from %s, but it sends %s telemetry", p.o.Device, k)
				return schemas.Status{Online: true, Kind: k}, nil
			}
		}
		if !now.Before(deadline) {
			return schemas.Status{}, fmt.Errorf("%w: no online status from %s in %v; is it "+
				"registered, powered and connected?", ErrNotSeen, p.o.Device, p.o.Duration)
		}
		if from == 0 && !now.Before(first) && !said {
			p.say("nothing from %s yet: waiting for it to come online", p.o.Device)
			said = true
		}
		until := deadline
		if now.Before(first) {
			until = earliest(first, deadline)
		}
		if !p.wait(ctx, until) && ctx.Err() != nil {
			return schemas.Status{}, ctx.Err()
		}
	}
}

// observedInterval times a few telemetry messages, for a device that does
// not announce its interval; without three messages in a couple of default
// intervals it takes the default.
func (p *prober) observedInterval(ctx context.Context) time.Duration {
	from := time.Now()
	until := from.Add(2*defaultInterval + lateSlack)
	for {
		if t := p.telemetryIn(from, until); len(t) >= 3 {
			gaps := []time.Duration{t[1].Sub(t[0]), t[2].Sub(t[1])}
			slices.Sort(gaps)
			return max(time.Second, time.Duration(float64(gaps[0])*p.o.Speed).Round(time.Second))
		}
		if !p.wait(ctx, until) {
			return defaultInterval
		}
	}
}

// guessKind finds the one kind whose telemetry decoder takes every
// payload.
func guessKind(payloads [][]byte) (schemas.Kind, bool) {
	var found []schemas.Kind
	for _, k := range schemas.Kinds {
		ok := true
		for _, b := range payloads {
			if _, err := schemas.DecodeTelemetry(k, b); err != nil {
				ok = false
				break
			}
		}
		if ok {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		return "", false
	}
	return found[0], true
}

// checkRetained subscribes afresh, as the platform does after a restart,
// and expects the device's online status of this connection, retained.
func (p *prober) checkRetained(ctx context.Context, conn string) {
	st, retained, raw, err := p.retainedStatus(ctx)
	switch {
	case err != nil:
		p.set(CheckStatus, Fail, "no retained status: the platform cannot tell the device is "+
			"online after it restarts", err.Error())
	case !retained:
		p.set(CheckStatus, Fail, "the status is not retained", "a new subscriber got "+clip(raw)+
			" without the retain flag")
	case !st.Online || st.Conn != conn:
		p.set(CheckStatus, Fail, "the retained status is not this connection's online status",
			fmt.Sprintf("retained %s, but the device announced conn %q", clip(raw), conn))
	default:
		p.set(CheckStatus, Pass, fmt.Sprintf("online, kind %s, conn %s, interval %ds, retained",
			st.Kind, orDash(st.Conn), st.IntervalS))
	}
}

// retainedStatus subscribes to the device's status topic with a client of
// its own and returns the first message: the retained one, if any.
func (p *prober) retainedStatus(ctx context.Context) (schemas.Status, bool, []byte, error) {
	c := newClient(p.o, "probe-"+p.runID+"-r")
	if err := waitToken(ctx, c.Connect(), p.o.AnswerWithin); err != nil {
		return schemas.Status{}, false, nil, fmt.Errorf("second connection: %w", err)
	}
	defer c.Disconnect(50)
	got := make(chan mqtt.Message, 1)
	topic := schemas.DeviceTopic(p.station, p.o.Device, schemas.ChannelStatus)
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- m:
		default:
		}
	})
	if err := waitToken(ctx, tok, p.o.AnswerWithin); err != nil {
		return schemas.Status{}, false, nil, fmt.Errorf("subscribe: %w", err)
	}
	select {
	case m := <-got:
		st, err := schemas.DecodeStatus(m.Payload())
		if err != nil {
			return st, m.Retained(), m.Payload(), fmt.Errorf("%v: %s", err, clip(m.Payload()))
		}
		return st, m.Retained(), m.Payload(), nil
	case <-time.After(statusWait):
		return schemas.Status{}, false, nil, fmt.Errorf("nothing on %s within %v", topic, statusWait)
	case <-ctx.Done():
		return schemas.Status{}, false, nil, ctx.Err()
	}
}

// checkCommand sends device.ping and expects an ok answer, then the
// telemetry, both in time.
func (p *prober) checkCommand(ctx context.Context) {
	id := p.commandID("ping")
	sent, err := p.send(ctx, id, p.deviceNow().Add(time.Hour))
	if err != nil {
		p.set(CheckCommand, Fail, "device.ping could not be sent", err.Error())
		return
	}
	res, at, ok := p.awaitResult(ctx, id, sent, sent.Add(p.o.AnswerWithin))
	switch {
	case !ok:
		p.set(CheckCommand, Fail, fmt.Sprintf("device.ping not answered within %v", p.o.AnswerWithin),
			"sent "+stamp(sent)+" id "+id)
		return
	case !res.OK:
		p.set(CheckCommand, Fail, "device.ping refused", fmt.Sprintf("answer %+v", res))
		return
	}
	tm, seen := p.awaitTelemetry(ctx, sent, sent.Add(p.o.AnswerWithin))
	p.excuse(sent, sent.Add(p.window()))
	if !seen {
		p.set(CheckCommand, Fail, "device.ping answered, but no telemetry followed",
			fmt.Sprintf("answered in %v; nothing on telemetry within %v", at.Sub(sent).Round(
				time.Millisecond), p.o.AnswerWithin))
		return
	}
	p.set(CheckCommand, Pass, fmt.Sprintf("device.ping answered ok in %v, telemetry after %v",
		at.Sub(sent).Round(time.Millisecond), tm.Sub(sent).Round(time.Millisecond)))
}

// checkRepeat sends a ping id a second time, just after a periodic
// telemetry: the first answer must come again, and no telemetry in the
// window after, since the command must not run twice. A suspicion is
// tried again with a new id before it fails.
func (p *prober) checkRepeat(ctx context.Context) {
	var evidence []string
	for trial := 1; trial <= 2; trial++ {
		id := p.commandID(fmt.Sprintf("repeat%d", trial))
		expires := p.deviceNow().Add(time.Hour)
		first, err := p.send(ctx, id, expires)
		if err != nil {
			p.set(CheckRepeat, Fail, "could not send", err.Error())
			return
		}
		if _, _, ok := p.awaitResult(ctx, id, first, first.Add(p.o.AnswerWithin)); !ok {
			p.set(CheckRepeat, Skip, "device.ping not answered, so a repeat tells nothing")
			return
		}
		p.excuse(first, first.Add(p.window()))

		p.syncToTelemetry(ctx)
		again, err := p.send(ctx, id, expires)
		if err != nil {
			p.set(CheckRepeat, Fail, "could not send", err.Error())
			return
		}
		res, at, answered := p.awaitResult(ctx, id, again, again.Add(p.o.AnswerWithin))
		p.sleepUntil(ctx, again.Add(p.window()))
		extra := p.telemetryIn(again, again.Add(p.window()))
		p.excuse(again, again.Add(p.window()))
		if !answered {
			p.set(CheckRepeat, Fail, "a repeated command id was not answered again",
				fmt.Sprintf("%s sent again at %s: no answer within %v (send the first answer "+
					"again, so a platform that lost it gets it)", id, stamp(again), p.o.AnswerWithin))
			return
		}
		if len(extra) == 0 {
			p.set(CheckRepeat, Pass, fmt.Sprintf("first answer sent again in %v (ok %v), not "+
				"carried out again", at.Sub(again).Round(time.Millisecond), res.OK))
			return
		}
		evidence = append(evidence, fmt.Sprintf("trial %d: %s sent again at %s, telemetry at %s: "+
			"the ping ran again", trial, id, stamp(again), stamp(extra[0])))
	}
	p.set(CheckRepeat, Fail, "a repeated command id was carried out again", evidence...)
}

// checkExpired sends a ping that expired an hour ago by the device's
// clock, just after a periodic telemetry: no ok answer may come, and no
// telemetry in the window after.
func (p *prober) checkExpired(ctx context.Context) {
	var evidence []string
	for trial := 1; trial <= 2; trial++ {
		p.syncToTelemetry(ctx)
		id := p.commandID(fmt.Sprintf("expired%d", trial))
		p.expiredIDs = append(p.expiredIDs, id)
		expires := p.deviceNow().Add(-time.Hour)
		sent, err := p.send(ctx, id, expires)
		if err != nil {
			p.set(CheckExpired, Fail, "could not send", err.Error())
			return
		}
		until := sent.Add(max(p.window(), min(p.o.AnswerWithin, 2*time.Second)))
		res, at, answered := p.awaitResult(ctx, id, sent, until)
		p.sleepUntil(ctx, sent.Add(p.window()))
		extra := p.telemetryIn(sent, sent.Add(p.window()))
		p.excuse(sent, sent.Add(p.window()))
		if answered && res.OK {
			p.set(CheckExpired, Fail, "an expired command was carried out",
				fmt.Sprintf("%s expired at %s by the device's clock, sent %s, answered ok at %s",
					id, time.UnixMilli(expires.UnixMilli()).Format(time.DateTime), stamp(sent),
					stamp(at)))
			return
		}
		if len(extra) == 0 {
			p.set(CheckExpired, Pass, "dropped: no effect and no ok answer")
			return
		}
		evidence = append(evidence, fmt.Sprintf("trial %d: %s (expired) sent at %s, telemetry "+
			"at %s", trial, id, stamp(sent), stamp(extra[0])))
	}
	p.set(CheckExpired, Fail, "an expired command was carried out", evidence...)
}

// checkExpiredAnswers fails the expired check on an ok answer to an
// expired command that came late.
func (p *prober) checkExpiredAnswers() {
	if c := p.checks[CheckExpired]; c.Result == Fail {
		return
	}
	for _, m := range p.deviceMessages() {
		if m.topic.Channel != schemas.ChannelCmdResult {
			continue
		}
		r, err := schemas.DecodeCommandResult(m.payload)
		if err == nil && r.OK && slices.Contains(p.expiredIDs, r.ID) {
			p.set(CheckExpired, Fail, "an expired command was carried out",
				fmt.Sprintf("answered %s ok at %s", r.ID, stamp(m.at)))
			return
		}
	}
}

// checkWill has the device lose power and expects the will of its
// connection, retained, then the device back on a new connection.
func (p *prober) checkWill(ctx context.Context) {
	st, _ := p.lastOnline()
	from := p.count()
	cut := time.Now()
	p.say("cut the power of %s now; waiting up to %v for its last will", p.o.Device, p.o.WillWithin)
	if err := p.o.PowerCycle(ctx); err != nil {
		p.set(CheckWill, Fail, "could not cut the power", err.Error())
		return
	}
	will, wat, ok := p.awaitStatus(ctx, from, cut.Add(p.o.WillWithin), func(s schemas.Status) bool {
		return !s.Online
	})
	if !ok {
		p.excuse(cut, time.Now())
		p.set(CheckWill, Fail, fmt.Sprintf("no offline status within %v of the power cut: the "+
			"device sets no last will", p.o.WillWithin), "power cut at "+stamp(cut))
		return
	}
	if st.Conn != "" && will.Conn != st.Conn {
		p.excuse(cut, time.Now())
		p.set(CheckWill, Fail, "the last will names another connection",
			fmt.Sprintf("online with conn %q, will says %q", st.Conn, will.Conn))
		return
	}
	kept, retained, raw, rerr := p.retainedStatus(ctx)
	keptOK := rerr == nil && retained && ((!kept.Online && kept.Conn == will.Conn) ||
		(kept.Online && kept.Conn != will.Conn))

	p.say("waiting up to %v for %s to come back", p.o.BackWithin, p.o.Device)
	back, bat, ok := p.awaitStatus(ctx, from, cut.Add(p.o.BackWithin), func(s schemas.Status) bool {
		return s.Online && s.Conn != st.Conn
	})
	if !ok {
		p.excuse(cut, time.Now())
		p.set(CheckWill, Fail, "the will came, but the device did not come back",
			fmt.Sprintf("will at %s; no new online status within %v of the cut", stamp(wat),
				p.o.BackWithin))
		return
	}
	p.excuse(cut, bat.Add(p.window()))
	if !keptOK {
		p.set(CheckWill, Fail, "the last will is not retained",
			fmt.Sprintf("a new subscriber after the will got %s (retained %v, %v)", clip(raw),
				retained, rerr))
		return
	}
	p.set(CheckWill, Pass, fmt.Sprintf("will of conn %s %v after the cut, retained; back as conn "+
		"%s after %v", will.Conn, wat.Sub(cut).Round(time.Millisecond), back.Conn,
		bat.Sub(cut).Round(time.Millisecond)))
}

// checkContract decodes every message the device sent.
func (p *prober) checkContract() {
	n, bad := 0, []string{}
	for _, m := range p.deviceMessages() {
		n++
		if err := p.decode(m); err != nil {
			bad = append(bad, fmt.Sprintf("%s %s: %v: %s", stamp(m.at), m.topic.Channel, err,
				clip(m.payload)))
		}
	}
	if len(bad) == 0 {
		p.set(CheckContract, Pass, fmt.Sprintf("%d messages, all valid", n))
		return
	}
	p.set(CheckContract, Fail, fmt.Sprintf("%d of %d messages break the contract", len(bad), n),
		bad...)
}

// decode checks one message against the contract.
func (p *prober) decode(m seen) error {
	var err error
	switch m.topic.Channel {
	case schemas.ChannelStatus:
		var st schemas.Status
		if st, err = schemas.DecodeStatus(m.payload); err == nil && st.Kind != p.kind {
			err = fmt.Errorf("kind %q, but the device announced %q", st.Kind, p.kind)
		}
	case schemas.ChannelTelemetry:
		_, err = schemas.DecodeTelemetry(p.kind, m.payload)
	case schemas.ChannelEvent:
		_, err = schemas.DecodeEvent(m.payload)
	case schemas.ChannelCmdResult:
		_, err = schemas.DecodeCommandResult(m.payload)
	case schemas.ChannelAccessReq:
		if p.kind != schemas.KindLock {
			return errors.New("only door terminals send access requests")
		}
		_, err = schemas.DecodeAccessRequest(m.payload)
	}
	return err
}

// checkSequence expects seq to grow within a connection; it may start
// again after a reboot.
func (p *prober) checkSequence() {
	var last uint64
	var bad []string
	n := 0
	for _, m := range p.deviceMessages() {
		if m.retained {
			continue // sent before the probe looked
		}
		var meta struct {
			Seq    uint64 `json:"seq"`
			Online *bool  `json:"online"`
		}
		if json.Unmarshal(m.payload, &meta) != nil || meta.Seq == 0 {
			continue
		}
		if m.topic.Channel == schemas.ChannelStatus && meta.Online != nil && *meta.Online {
			last = 0 // a new connection may follow a reboot
		}
		n++
		if meta.Seq <= last {
			bad = append(bad, fmt.Sprintf("%s %s: seq %d after %d", stamp(m.at), m.topic.Channel,
				meta.Seq, last))
		}
		last = meta.Seq
	}
	switch {
	case n == 0:
		p.set(CheckSequence, Skip, "no message carried seq")
	case len(bad) == 0:
		p.set(CheckSequence, Pass, fmt.Sprintf("seq grows over %d messages", n))
	default:
		p.set(CheckSequence, Fail, "seq went back within a connection", bad...)
	}
}

// checkInterval measures the gaps between telemetry messages against the
// announced interval: none may be much longer (a missed report), counting
// the stretches before the first and after the last, and most may not be
// much shorter. Gaps across a power cut, and telemetry a command caused,
// are left out.
func (p *prober) checkInterval(started time.Time) {
	if !p.announced {
		p.set(CheckInterval, Skip, "the status announces no interval_s, so there is nothing to "+
			"hold the reports to (send it: the platform tells silence from it)")
		return
	}
	period := p.period()
	end := time.Now()
	if end.Sub(started) < 2*period {
		p.set(CheckInterval, Skip, fmt.Sprintf("watched %v: watch at least two intervals (%v)",
			end.Sub(started).Round(time.Second), 2*period))
		return
	}
	// Any telemetry shows the device alive; only periodic ones tell its
	// pace.
	points := []time.Time{started}
	var periodic []time.Time
	for _, m := range p.deviceMessages() {
		if m.topic.Channel != schemas.ChannelTelemetry || m.retained || !m.at.After(started) {
			continue
		}
		points = append(points, m.at)
		if !p.isExcused(m.at) {
			periodic = append(periodic, m.at)
		}
	}
	points = append(points, end)

	late := p.late()
	var gaps []time.Duration
	var bad []string
	for i := 1; i < len(points); i++ {
		a, b := points[i-1], points[i]
		if p.excusedBetween(a, b) {
			continue
		}
		gap := b.Sub(a)
		if gap <= late {
			continue
		}
		switch {
		case i == 1:
			bad = append(bad, fmt.Sprintf("watching from %s, first telemetry at %s: %v apart",
				stamp(a), stamp(b), gap.Round(time.Millisecond)))
		case i == len(points)-1:
			bad = append(bad, fmt.Sprintf("last telemetry at %s, silent until %s: %v apart",
				stamp(a), stamp(b), gap.Round(time.Millisecond)))
		default:
			bad = append(bad, fmt.Sprintf("telemetry at %s, then nothing until %s: %v apart",
				stamp(a), stamp(b), gap.Round(time.Millisecond)))
		}
	}
	announced := fmt.Sprintf("interval_s %d", int(p.interval/time.Second))
	if p.o.Speed != 1 {
		announced += fmt.Sprintf(" at speed %g: %v", p.o.Speed, period.Round(time.Millisecond))
	}
	if len(bad) > 0 {
		p.set(CheckInterval, Fail, fmt.Sprintf("reports come late (%s; overdue after %v)", announced,
			late.Round(time.Millisecond)), bad...)
		return
	}
	for i := 1; i < len(periodic); i++ {
		if !p.excusedBetween(periodic[i-1], periodic[i]) {
			gaps = append(gaps, periodic[i].Sub(periodic[i-1]))
		}
	}
	if len(gaps) == 0 {
		p.set(CheckInterval, Skip, "no two periodic telemetry messages in a row to measure")
		return
	}
	sorted := slices.Clone(gaps)
	slices.Sort(sorted)
	median := sorted[len(sorted)/2]
	if median < period/2 {
		p.set(CheckInterval, Fail, fmt.Sprintf("reports far more often than announced: %s, "+
			"median gap %v", announced, median.Round(time.Millisecond)))
		return
	}
	p.set(CheckInterval, Pass, fmt.Sprintf("%d gaps of %v to %v, median %v (%s)", len(gaps),
		sorted[0].Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond),
		median.Round(time.Millisecond), announced))
}

// send publishes device.ping with id, expiring at expires by the device's
// clock, and returns when.
func (p *prober) send(ctx context.Context, id string, expires time.Time) (time.Time, error) {
	b, err := json.Marshal(schemas.Command{Meta: schemas.Meta{TS: p.deviceNow().UnixMilli()},
		ID: id, Name: schemas.CmdPing, ExpiresAt: max(1, expires.UnixMilli())})
	if err != nil {
		return time.Time{}, err
	}
	at := time.Now()
	tok := p.client.Publish(schemas.DeviceTopic(p.station, p.o.Device, schemas.ChannelCmd), 1, false, b)
	if err := waitToken(ctx, tok, p.o.AnswerWithin); err != nil {
		return at, err
	}
	p.log.Debug("command sent", "command", id)
	return at, nil
}

// awaitResult waits until the answer to id that arrived after from, or
// the deadline.
func (p *prober) awaitResult(ctx context.Context, id string, from, until time.Time) (
	schemas.CommandResult, time.Time, bool) {
	for {
		for _, m := range p.deviceMessages() {
			if m.topic.Channel != schemas.ChannelCmdResult || m.at.Before(from) {
				continue
			}
			if r, err := schemas.DecodeCommandResult(m.payload); err == nil && r.ID == id {
				return r, m.at, true
			}
		}
		if !p.wait(ctx, until) {
			return schemas.CommandResult{}, time.Time{}, false
		}
	}
}

// awaitTelemetry waits for a telemetry message after from.
func (p *prober) awaitTelemetry(ctx context.Context, from, until time.Time) (time.Time, bool) {
	for {
		if t := p.telemetryIn(from, until); len(t) > 0 {
			return t[0], true
		}
		if !p.wait(ctx, until) {
			return time.Time{}, false
		}
	}
}

// awaitStatus waits for a live status, among the messages from index
// from on, that match wants.
func (p *prober) awaitStatus(ctx context.Context, from int, until time.Time,
	wants func(schemas.Status) bool) (schemas.Status, time.Time, bool) {
	for {
		for _, m := range p.since(from) {
			if m.topic.Channel != schemas.ChannelStatus {
				continue
			}
			if st, err := schemas.DecodeStatus(m.payload); err == nil && wants(st) {
				return st, m.at, true
			}
		}
		if !p.wait(ctx, until) {
			return schemas.Status{}, time.Time{}, false
		}
	}
}

// syncToTelemetry waits for the next periodic telemetry message (not one
// a command of the probe caused), so what follows falls between two
// periodic reports.
func (p *prober) syncToTelemetry(ctx context.Context) {
	from := time.Now()
	for _, e := range p.excused {
		from = laterOf(from, e[1])
	}
	p.awaitTelemetry(ctx, from, from.Add(p.late()))
}

// telemetryIn returns the arrival times of telemetry in (from, until].
func (p *prober) telemetryIn(from, until time.Time) []time.Time {
	var out []time.Time
	for _, m := range p.deviceMessages() {
		if m.topic.Channel == schemas.ChannelTelemetry && m.at.After(from) && !m.at.After(until) {
			out = append(out, m.at)
		}
	}
	return out
}

// period is the announced interval on the wall clock.
func (p *prober) period() time.Duration {
	return time.Duration(float64(p.interval) / p.o.Speed)
}

// late is how long after the last telemetry the next one is overdue: half
// an interval more, and a little for the network.
func (p *prober) late() time.Duration {
	return time.Duration(lateFactor*float64(p.period())) + min(lateSlack, p.period()/4)
}

// window is how long after a command its telemetry counts as its effect:
// half an interval, within limits, so no periodic report falls in it.
func (p *prober) window() time.Duration {
	return min(maxWindow, max(minWindow, p.period()/2))
}

// deviceNow estimates the device's clock from the latest message that
// carried ts.
func (p *prober) deviceNow() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.msgs) - 1; i >= 0; i-- {
		m := p.msgs[i]
		if m.retained || !m.topic.Channel.FromDevice() {
			continue
		}
		var meta struct {
			TS int64 `json:"ts"`
		}
		if json.Unmarshal(m.payload, &meta) == nil && meta.TS > 0 {
			since := time.Duration(float64(time.Since(m.at)) * p.o.Speed)
			return time.UnixMilli(meta.TS).Add(since)
		}
	}
	return time.Now()
}

// lastOnline returns the device's latest online status.
func (p *prober) lastOnline() (schemas.Status, bool) {
	msgs := p.deviceMessages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].topic.Channel != schemas.ChannelStatus {
			continue
		}
		if st, err := schemas.DecodeStatus(msgs[i].payload); err == nil && st.Online {
			return st, true
		}
	}
	return schemas.Status{}, false
}

// deviceMessages returns what the device sent, in order of arrival.
func (p *prober) deviceMessages() []seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]seen, 0, len(p.msgs))
	for _, m := range p.msgs {
		if m.topic.Channel.FromDevice() {
			out = append(out, m)
		}
	}
	return out
}

// since returns the messages from index i on.
func (p *prober) since(i int) []seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i >= len(p.msgs) {
		return nil
	}
	return slices.Clone(p.msgs[i:])
}

func (p *prober) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

// sleepUntil waits until t, or until ctx ends.
func (p *prober) sleepUntil(ctx context.Context, t time.Time) {
	left := time.Until(t)
	if left <= 0 {
		return
	}
	tm := time.NewTimer(left)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// wait waits for a new message until the deadline, and reports whether
// one came.
func (p *prober) wait(ctx context.Context, until time.Time) bool {
	left := time.Until(until)
	if left <= 0 {
		return false
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-p.notify:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// learnStation takes the station from the device's first message.
func (p *prober) learnStation(m seen) {
	if p.station == "" {
		p.station = m.topic.Station
	}
}

// excuse marks a span whose telemetry is not periodic.
func (p *prober) excuse(from, to time.Time) {
	p.excused = append(p.excused, [2]time.Time{from, to})
}

func (p *prober) isExcused(t time.Time) bool {
	for _, e := range p.excused {
		if !t.Before(e[0]) && !t.After(e[1]) {
			return true
		}
	}
	return false
}

// excusedBetween reports whether a power cut began within (a, b): a gap
// across it says nothing about the interval.
func (p *prober) excusedBetween(a, b time.Time) bool {
	for _, e := range p.excused {
		if e[0].After(a) && e[0].Before(b) && e[1].Sub(e[0]) > p.window() {
			return true
		}
	}
	return false
}

// set records a check's outcome, keeping a bounded amount of evidence.
func (p *prober) set(name string, r Result, summary string, evidence ...string) {
	if len(evidence) > maxEvidence {
		more := len(evidence) - maxEvidence
		evidence = append(evidence[:maxEvidence:maxEvidence], fmt.Sprintf("and %d more", more))
	}
	p.checks[name] = Check{Name: name, Result: r, Summary: summary, Evidence: evidence}
	p.log.Debug("check", "check", name, "result", string(r), "summary", summary)
}

func (p *prober) say(format string, args ...any) {
	if p.o.Progress != nil {
		p.o.Progress(fmt.Sprintf(format, args...))
	}
}

// commandID names a probe command so it is recognisable in logs.
func (p *prober) commandID(what string) string {
	return "probe-" + p.runID + "-" + what
}

// waitToken waits for a paho token, at most d.
func waitToken(ctx context.Context, tok mqtt.Token, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return fmt.Errorf("no answer from the broker within %v", d)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// randomID is eight random hex digits.
func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported systems
	return hex.EncodeToString(b[:])
}

// clip shortens a payload for evidence.
func clip(b []byte) string {
	if len(b) <= maxPayloadShown {
		return string(b)
	}
	return string(b[:maxPayloadShown]) + "…"
}

// stamp is a wall-clock time of day to the millisecond.
func stamp(t time.Time) string { return t.Format("15:04:05.000") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
