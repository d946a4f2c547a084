package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
)

// MQTTBusOptions configures an MQTTBus. URL, Username and Password are
// required.
type MQTTBusOptions struct {
	// URL is the broker: tcp://host:port, ssl://host:port or
	// ws://host:port/path.
	URL      string
	Username string
	Password string
	// ClientID is the controller's MQTT client id. Two controllers must not
	// share one: the broker would let each log the other out. Default
	// "waystation-controller".
	ClientID string
	// Persistent asks for a persistent session (clean session off): the
	// broker keeps the subscriptions and queues QoS 1 messages while the
	// controller is away, up to its own limits, and delivers them when it
	// is back; those that come before the controller has subscribed again
	// are held (up to 100,000) and handed to the subscription that matches
	// them. Off (the default), the broker forgets the controller when
	// it goes, and messages sent meanwhile are lost to it; the controller
	// subscribes again on every connect either way, and gets the retained
	// statuses again, so its twins catch up.
	Persistent bool
	// ConnectTimeout bounds the first connection and each reconnect
	// attempt. Default 10 s.
	ConnectTimeout time.Duration
	// MaxReconnectInterval caps the doubling wait between reconnect
	// attempts, which starts at one second. Default 10 s.
	MaxReconnectInterval time.Duration
	// MaxInFlight bounds the publishes sent and not yet acknowledged.
	// Default 1024.
	MaxInFlight int
	// PublishWait is how long Publish waits for a free in-flight slot
	// before it fails. Default 1 s.
	PublishWait time.Duration
	// KeepAlive is the MQTT keep-alive. Default 30 s.
	KeepAlive  time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// ErrNotConnected is returned by MQTTBus.Publish while the connection to
// the broker is down; the bus is reconnecting.
var ErrNotConnected = errors.New("not connected to the mqtt broker")

// ErrBusClosed is returned after MQTTBus.Close.
var ErrBusClosed = errors.New("mqtt bus closed")

// MQTTBus is a Bus onto an external MQTT broker, over one connection.
//
// It reconnects by itself, waiting one second and then twice as long after
// each failure up to MaxReconnectInterval, and on every connect it makes
// every subscription again: a broker that restarted without persistence
// has forgotten them.
//
// Messages reach the handlers one at a time, in the order the broker sent
// them, so the messages of one topic stay in order; a handler must return
// quickly (hand the message to a queue), as with any Bus.
type MQTTBus struct {
	o   MQTTBusOptions
	log *slog.Logger
	c   mqtt.Client

	mu      sync.Mutex          // guards subs, their handlers, backlog and closed
	subs    map[string]*mqttSub // by filter
	backlog []mqtt.Message      // persistent session: messages no subscription took yet
	// deliverMu orders handler calls: a message replayed from the backlog
	// goes before one arriving later.
	deliverMu sync.Mutex
	closed    bool

	slots   chan struct{} // one token per publish in flight
	connect chan struct{} // a connect happened: subscribe again
	stop    chan struct{} // closed by Close
	wg      sync.WaitGroup

	connected   prometheus.Gauge
	connects    prometheus.Counter
	lost        prometheus.Counter
	published   *prometheus.CounterVec
	subscribed  prometheus.Gauge
	inflight    prometheus.GaugeFunc
	resubscribe prometheus.Counter
	collectors  []prometheus.Collector

	backlogDropped prometheus.Counter
}

type mqttSub struct {
	qos byte
	hs  []func(topic string, payload []byte, retained bool)
}

// DialMQTTBus connects to the broker and returns the bus. It fails, with the
// broker's answer, if the first connection does not succeed within
// ConnectTimeout: a wrong address or password is found at start-up, not at
// the first message.
func DialMQTTBus(o MQTTBusOptions) (*MQTTBus, error) {
	if o.URL == "" {
		return nil, errors.New("mqtt bus: no broker URL")
	}
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("broker %q: want tcp://host:port", o.URL)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return nil, fmt.Errorf("broker %q: scheme %q: want tcp, ssl, ws or wss", o.URL, u.Scheme)
	}
	if o.Username == "" || o.Password == "" {
		return nil, errors.New("mqtt bus: the controller needs a broker user and password")
	}
	if o.ClientID == "" {
		o.ClientID = "waystation-controller"
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.MaxReconnectInterval <= 0 {
		o.MaxReconnectInterval = 10 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1024
	}
	if o.PublishWait <= 0 {
		o.PublishWait = time.Second
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	b := &MQTTBus{
		o:       o,
		log:     o.Logger.With("component", "mqtt", "broker", u.Host),
		subs:    map[string]*mqttSub{},
		slots:   make(chan struct{}, o.MaxInFlight),
		connect: make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	if err := b.metrics(); err != nil {
		return nil, err
	}

	opts := mqtt.NewClientOptions().AddBroker(o.URL).SetClientID(o.ClientID).
		SetUsername(o.Username).SetPassword(o.Password).
		SetCleanSession(!o.Persistent).
		SetOrderMatters(true). // one handler call at a time, in arrival order
		SetAutoReconnect(true).SetConnectRetry(false).
		SetMaxReconnectInterval(o.MaxReconnectInterval).
		SetConnectTimeout(o.ConnectTimeout).SetKeepAlive(o.KeepAlive).
		SetPingTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second).
		// The bus makes its subscriptions again itself on every connect.
		SetResumeSubs(false).
		// Every message comes to dispatch, which finds its filters by map
		// lookups: paho's own routes are a list walked for every message,
		// too slow for the thousands of filters of a partition.
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { b.dispatch(m) }).
		SetMaxResumePubInFlight(o.MaxInFlight).
		SetOnConnectHandler(func(mqtt.Client) {
			b.connected.Set(1)
			b.connects.Inc()
			select {
			case b.connect <- struct{}{}:
			default: // a resubscription is already due
			}
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			b.connected.Set(0)
			b.lost.Inc()
			b.log.Warn("lost the connection to the mqtt broker; reconnecting", "err", err)
		}).
		SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) {
			b.log.Info("reconnecting to the mqtt broker")
		})
	b.c = mqtt.NewClient(opts)

	tok := b.c.Connect()
	if !tok.WaitTimeout(o.ConnectTimeout + time.Second) {
		b.c.Disconnect(0)
		b.unregister()
		return nil, fmt.Errorf("connect to broker %s: no answer within %v", u.Host, o.ConnectTimeout)
	}
	if err := tok.Error(); err != nil {
		b.c.Disconnect(0)
		b.unregister()
		return nil, fmt.Errorf("connect to broker %s as %q: %w", u.Host, o.Username, err)
	}
	b.log.Info("connected to the mqtt broker", "client_id", o.ClientID, "persistent", o.Persistent)

	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.resubscribeLoop()
	}()
	return b, nil
}

func (b *MQTTBus) metrics() error {
	b.connected = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "waystation_mqtt_connected",
		Help: "1 while the controller is connected to the external MQTT broker.",
	})
	b.connects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "waystation_mqtt_connects_total",
		Help: "Connections made to the external MQTT broker, the first one included.",
	})
	b.lost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "waystation_mqtt_connection_lost_total",
		Help: "Connections to the external MQTT broker that were lost.",
	})
	b.resubscribe = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "waystation_mqtt_resubscribes_total",
		Help: "Times every subscription was made again after a reconnect.",
	})
	b.published = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_mqtt_publishes_total",
		Help: "Messages the controller published to the external broker, by result.",
	}, []string{"result"})
	b.subscribed = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "waystation_mqtt_subscriptions",
		Help: "Subscription filters the controller holds on the external broker.",
	})
	b.inflight = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "waystation_mqtt_publishes_in_flight",
		Help: "Publishes sent to the external broker and not yet acknowledged.",
	}, func() float64 { return float64(len(b.slots)) })
	b.backlogDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "waystation_mqtt_backlog_dropped_total",
		Help: "Messages of a persistent session dropped because they came before any " +
			"subscription took them and the backlog was full.",
	})
	for _, r := range []string{"ok", "error", "timeout", "not_connected", "busy"} {
		b.published.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{b.connected, b.connects, b.lost, b.resubscribe,
		b.published, b.subscribed, b.inflight, b.backlogDropped} {
		if err := b.o.Registerer.Register(c); err != nil {
			b.unregister()
			return fmt.Errorf("register mqtt metrics: %w", err)
		}
		b.collectors = append(b.collectors, c)
	}
	return nil
}

func (b *MQTTBus) unregister() {
	for _, c := range b.collectors {
		b.o.Registerer.Unregister(c)
	}
	b.collectors = nil
}

// resubscribeLoop makes every subscription again after each connect but
// the first (Subscribe makes those while connected).
func (b *MQTTBus) resubscribeLoop() {
	first := true
	for {
		select {
		case <-b.stop:
			return
		case <-b.connect:
		}
		if first {
			first = false
			continue
		}
		b.mu.Lock()
		subs := make(map[string]byte, len(b.subs))
		for f, s := range b.subs {
			subs[f] = s.qos
		}
		b.mu.Unlock()
		if err := b.subscribe(subs); err != nil {
			b.log.Error("subscribe again after reconnect", "filters", len(subs), "err", err)
			continue
		}
		b.resubscribe.Inc()
		b.log.Info("subscribed again after reconnect", "filters", len(subs))
	}
}

// subscribeBatch is how many filters go in one SUBSCRIBE packet.
const subscribeBatch = 200

// subscribe sends SUBSCRIBE packets for filters and waits for the broker's
// answers. The handlers are the routes Subscribe added.
func (b *MQTTBus) subscribe(filters map[string]byte) error {
	var errs []error
	batch := make(map[string]byte, subscribeBatch)
	send := func() {
		if len(batch) == 0 {
			return
		}
		tok := b.c.SubscribeMultiple(batch, nil)
		select {
		case <-tok.Done():
		case <-b.stop:
			errs = append(errs, ErrBusClosed)
			return
		case <-time.After(b.o.ConnectTimeout):
			errs = append(errs, fmt.Errorf("subscribe: no answer within %v", b.o.ConnectTimeout))
			return
		}
		if err := tok.Error(); err != nil {
			errs = append(errs, fmt.Errorf("subscribe: %w", err))
		} else if st, ok := tok.(*mqtt.SubscribeToken); ok {
			for f, code := range st.Result() {
				if code == 0x80 {
					errs = append(errs, fmt.Errorf("subscribe %q: the broker refused it "+
						"(check the controller's ACL)", f))
				}
			}
		}
		batch = make(map[string]byte, subscribeBatch)
	}
	for f, q := range filters {
		batch[f] = q
		if len(batch) == subscribeBatch {
			send()
		}
	}
	send()
	return errors.Join(errs...)
}

// Subscribe delivers messages matching filter, retained ones included, and
// keeps the subscription across reconnects. While the connection is down
// it only records the filter; the next connect subscribes. A handler must
// not call Subscribe.
func (b *MQTTBus) Subscribe(filter string, qos byte,
	h func(topic string, payload []byte, retained bool)) error {
	if h == nil {
		return fmt.Errorf("subscribe %q: nil handler", filter)
	}
	if qos > 2 {
		return fmt.Errorf("subscribe %q: qos %d above 2", filter, qos)
	}
	if filter == "" {
		return errors.New("subscribe: empty filter")
	}
	b.deliverMu.Lock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.deliverMu.Unlock()
		return ErrBusClosed
	}
	// Recorded before the connection is looked at: a connect that comes
	// after this point subscribes it.
	s, ok := b.subs[filter]
	if !ok {
		s = &mqttSub{qos: qos}
		b.subs[filter] = s
	}
	s.qos = max(s.qos, qos)
	s.hs = append(s.hs[:len(s.hs):len(s.hs)], h)
	qos = s.qos
	b.subscribed.Set(float64(len(b.subs)))
	b.mu.Unlock()
	b.replay([]string{filter}, h)
	b.deliverMu.Unlock()
	if !b.c.IsConnectionOpen() {
		return nil
	}
	if err := b.subscribe(map[string]byte{filter: qos}); err != nil {
		if errors.Is(err, ErrBusClosed) || !b.c.IsConnectionOpen() {
			return nil // made again on the next connect
		}
		b.forget(filter)
		return err
	}
	return nil
}

// SubscribeMany is Subscribe for many filters with one handler, sent in
// SUBSCRIBE packets of up to 200 filters each. If the broker refuses any,
// none of them is kept.
func (b *MQTTBus) SubscribeMany(filters []string, qos byte,
	h func(topic string, payload []byte, retained bool)) error {
	if h == nil || qos > 2 {
		return fmt.Errorf("subscribe %d filters: nil handler or qos %d above 2", len(filters), qos)
	}
	for _, f := range filters {
		if f == "" {
			return errors.New("subscribe: empty filter")
		}
	}
	want := make(map[string]byte, len(filters))
	b.deliverMu.Lock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.deliverMu.Unlock()
		return ErrBusClosed
	}
	for _, f := range filters {
		s, ok := b.subs[f]
		if !ok {
			s = &mqttSub{qos: qos}
			b.subs[f] = s
		}
		s.qos = max(s.qos, qos)
		s.hs = append(s.hs[:len(s.hs):len(s.hs)], h)
		want[f] = s.qos
	}
	b.subscribed.Set(float64(len(b.subs)))
	b.mu.Unlock()
	b.replay(filters, h)
	b.deliverMu.Unlock()
	if !b.c.IsConnectionOpen() {
		return nil
	}
	if err := b.subscribe(want); err != nil {
		if errors.Is(err, ErrBusClosed) || !b.c.IsConnectionOpen() {
			return nil // made again on the next connect
		}
		for _, f := range filters {
			b.forget(f)
		}
		return err
	}
	return nil
}

// Unsubscribe ends the subscriptions to filter made through the bus.
func (b *MQTTBus) Unsubscribe(filter string) error {
	b.forget(filter)
	if !b.c.IsConnectionOpen() {
		return nil
	}
	tok := b.c.Unsubscribe(filter)
	if !tok.WaitTimeout(b.o.ConnectTimeout) {
		return fmt.Errorf("unsubscribe %q: no answer within %v", filter, b.o.ConnectTimeout)
	}
	return tok.Error()
}

func (b *MQTTBus) forget(filter string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs, filter)
	b.subscribed.Set(float64(len(b.subs)))
}

// Publish sends a message. It does not wait for the broker's
// acknowledgement: at most MaxInFlight publishes wait for theirs, and a
// publish finding none free within PublishWait fails. It fails at once with
// ErrNotConnected while the connection is down, so the caller knows the
// message was not sent.
func (b *MQTTBus) Publish(topic string, qos byte, retained bool, payload []byte) error {
	if qos > 2 {
		return fmt.Errorf("publish %q: qos %d above 2", topic, qos)
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrBusClosed
	}
	if !b.c.IsConnectionOpen() {
		b.published.WithLabelValues("not_connected").Inc()
		return fmt.Errorf("publish %q: %w", topic, ErrNotConnected)
	}
	select {
	case b.slots <- struct{}{}:
	default:
		t := time.NewTimer(b.o.PublishWait)
		select {
		case b.slots <- struct{}{}:
			t.Stop()
		case <-t.C:
			b.published.WithLabelValues("busy").Inc()
			return fmt.Errorf("publish %q: %d publishes waiting for the broker", topic,
				b.o.MaxInFlight)
		case <-b.stop:
			t.Stop()
			return ErrBusClosed
		}
	}
	// The caller may reuse its buffer.
	tok := b.c.Publish(topic, qos, retained, append([]byte(nil), payload...))
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer func() { <-b.slots }()
		t := time.NewTimer(30 * time.Second)
		defer t.Stop()
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				b.published.WithLabelValues("error").Inc()
				b.log.Warn("publish failed", "topic", topic, "err", err)
				return
			}
			b.published.WithLabelValues("ok").Inc()
		case <-t.C:
			b.published.WithLabelValues("timeout").Inc()
			b.log.Warn("publish not acknowledged within 30s", "topic", topic)
		case <-b.stop:
		}
	}()
	return nil
}

// Connected reports whether the connection to the broker is up.
func (b *MQTTBus) Connected() bool { return b.c.IsConnectionOpen() }

// Close disconnects from the broker, giving publishes in flight up to a
// quarter of a second, and unregisters the metrics. Closing twice is
// harmless.
func (b *MQTTBus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.subs = map[string]*mqttSub{}
	b.mu.Unlock()

	b.c.Disconnect(250)
	close(b.stop)
	b.wg.Wait()
	b.connected.Set(0)
	b.unregister()
	return nil
}

// WaitConnected waits until the bus is connected or ctx ends.
func (b *MQTTBus) WaitConnected(ctx context.Context) error {
	for !b.c.IsConnectionOpen() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// dispatch calls the handlers of every filter that matches the message's
// topic.
func (b *MQTTBus) dispatch(m mqtt.Message) {
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	topic := m.Topic()
	var hs []func(string, []byte, bool)
	b.mu.Lock()
	for _, f := range matchingFilters(topic, b.subs) {
		hs = append(hs, b.subs[f].hs...)
	}
	if len(hs) == 0 && b.o.Persistent {
		// A persistent session's queued messages come right after the
		// connect, before the controller has subscribed again.
		if len(b.backlog) < maxBacklog {
			b.backlog = append(b.backlog, m)
		} else {
			b.backlogDropped.Inc()
		}
	}
	b.mu.Unlock()
	for _, h := range hs {
		h(topic, m.Payload(), m.Retained())
	}
}

// maxBacklog bounds the messages a persistent session keeps for
// subscriptions not made yet.
const maxBacklog = 100000

// replay hands h the backlog's messages that match one of filters, in
// arrival order, and takes them out of the backlog.
// b.deliverMu is held since before the subscription was registered, so no
// later message overtakes these.
func (b *MQTTBus) replay(filters []string, h func(string, []byte, bool)) {
	var mine []mqtt.Message
	b.mu.Lock()
	kept := b.backlog[:0]
	for _, m := range b.backlog {
		match := false
		for _, f := range filters {
			if topicMatches(f, m.Topic()) {
				match = true
				break
			}
		}
		if match {
			mine = append(mine, m)
		} else {
			kept = append(kept, m)
		}
	}
	clear(b.backlog[len(kept):])
	b.backlog = kept
	b.mu.Unlock()
	for _, m := range mine {
		h(m.Topic(), m.Payload(), m.Retained())
	}
}

// scanFilters is the number of filters up to which matchingFilters compares
// the topic with each; past it, it looks up every filter that could match.
const scanFilters = 64

// matchingFilters returns the filters of subs that match topic, by the
// rules of MQTT 3.1.1 section 4.7.
func matchingFilters[V any](topic string, subs map[string]V) []string {
	var out []string
	levels := strings.Split(topic, "/")
	if len(subs) <= scanFilters || len(levels) > 10 {
		for f := range subs {
			if topicMatches(f, topic) {
				out = append(out, f)
			}
		}
		return out
	}
	// Every filter that matches is, level by level, the topic's level or
	// "+", of the topic's length, or such a prefix followed by "#".
	dollar := strings.HasPrefix(topic, "$")
	parts := make([]string, 0, len(levels)+1)
	var try func(i int)
	try = func(i int) {
		if !(dollar && i == 0) {
			f := strings.Join(append(parts, "#"), "/")
			if _, ok := subs[f]; ok {
				out = append(out, f)
			}
		}
		if i == len(levels) {
			f := strings.Join(parts, "/")
			if _, ok := subs[f]; ok {
				out = append(out, f)
			}
			return
		}
		parts = append(parts, levels[i])
		try(i + 1)
		parts = parts[:i]
		if !(dollar && i == 0) {
			parts = append(parts, "+")
			try(i + 1)
			parts = parts[:i]
		}
	}
	try(0)
	return out
}

// topicMatches reports whether topic matches the subscription filter.
func topicMatches(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") ||
		strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		if !fmore || !tmore {
			// "a/#" also matches "a".
			return fmore == tmore || (fmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}
