package broker

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Bus is an in-process MQTT client onto a Broker, for the controller. It
// bypasses the ACL (the controller is trusted) but for retained commands,
// which it refuses like any client's. A Bus is safe for concurrent use.
type Bus struct {
	b *Broker

	mu     sync.Mutex // guards subs and closed
	subs   []busSub
	closed bool
}

type busSub struct {
	filter string
	id     int
}

// Subscribe calls h for every message whose topic matches filter: first
// for each retained message that matches, with retained true, then for
// every message published afterwards, with retained false, as an MQTT
// 3.1.1 subscriber sees them. A message published while Subscribe runs
// may come both ways.
//
// h runs on the publishing client's goroutine, possibly on many at once,
// and holds that client up while it runs: it must return quickly and not
// block (hand the message to a channel or queue and return). It may call
// Publish. It must not modify payload. qos is accepted for the interface's
// sake: in-process delivery loses nothing.
func (b *Bus) Subscribe(filter string, qos byte,
	h func(topic string, payload []byte, retained bool)) error {
	return b.SubscribeMany([]string{filter}, qos, h)
}

// SubscribeMany is Subscribe for each of filters with the one handler h,
// but it walks the broker's retained messages once for all of them: h gets
// each retained message once for every filter it matches, as from as many
// Subscribe calls, though not in filter order. If any filter is refused,
// none is kept.
func (b *Bus) SubscribeMany(filters []string, qos byte,
	h func(topic string, payload []byte, retained bool)) error {
	if len(filters) == 0 {
		return nil
	}
	if h == nil {
		return fmt.Errorf("subscribe %q: nil handler", clip(filters[0]))
	}
	for _, filter := range filters {
		if qos > 2 {
			return fmt.Errorf("subscribe %q: qos %d above 2", clip(filter), qos)
		}
		if !mqtt.IsValidFilter(filter, false) || mqtt.IsSharedFilter(filter) {
			return fmt.Errorf("subscribe %q: %w", clip(filter), ErrInvalidTopic)
		}
	}

	b.mu.Lock()
	if b.closed || b.b.closed.Load() {
		b.mu.Unlock()
		return ErrClosed
	}
	added := make([]busHandler, len(filters))
	for i, filter := range filters {
		id := int(b.b.subID.Add(1))
		b.subs = append(b.subs, busSub{filter: filter, id: id})
		added[i] = busHandler{id: id, levels: splitLevels(filter, nil), h: h}
	}
	b.mu.Unlock()

	// Bus subscriptions are kept out of mochi's topic index: for every
	// publish the index copies each matching node's inline subscriptions
	// into fresh maps, a third of the allocations of a device message.
	// The hook hands each publish to them instead (see Broker.dispatch).
	// Mochi's Server.Subscribe would also report live retained publishes
	// as retained, and its storage hook would save the subscription for a
	// client that a restart then turns into a real one.
	b.b.subs.add(added...)
	b.b.replayRetained(filters, h)
	return nil
}

// replayRetained calls h with every retained message, once for each of
// filters its topic matches.
//
// Mochi's TopicsIndex.Messages walks the topic tree for a wildcard filter
// and reads each node's retained path without the node's lock, racing with
// a device publishing its retained status at that moment
// (mochi-mqtt/server#200). Its map of retained messages is locked, so
// wildcard filters are matched against one copy of that map: at 40,000
// devices a copy is tens of milliseconds and megabytes of garbage, so it
// is made once for all the filters, not once for each.
func (b *Broker) replayRetained(filters []string, h func(string, []byte, bool)) {
	var wild []string
	for _, f := range filters {
		if strings.ContainsAny(f, "+#") {
			wild = append(wild, f)
			continue
		}
		for _, pk := range b.srv.Topics.Messages(f) { // a locked map lookup
			h(pk.TopicName, pk.Payload, true)
		}
	}
	if len(wild) == 0 {
		return
	}
	m := newFilterSet(wild)
	for topic, pk := range b.srv.Topics.Retained.GetAll() {
		for range m.matches(topic) {
			h(pk.TopicName, pk.Payload, true)
		}
	}
}

// filterSet finds which of a set of filters match a topic: by comparing
// each for a few, through a tree of their levels for many (a partition's
// thousands of station filters).
type filterSet struct {
	list [][]string // each filter's levels
	root *filterNode
}

type filterNode struct {
	next  map[string]*filterNode // by level; "+" and "#" included
	count int                    // filters ending here
}

// filterScan is the number of filters up to which filterSet compares each.
const filterScan = 16

func newFilterSet(filters []string) *filterSet {
	if len(filters) <= filterScan {
		s := &filterSet{}
		for _, f := range filters {
			s.list = append(s.list, splitLevels(f, nil))
		}
		return s
	}
	root := &filterNode{}
	for _, f := range filters {
		n := root
		for _, level := range strings.Split(f, "/") {
			c := n.next[level]
			if c == nil {
				if n.next == nil {
					n.next = map[string]*filterNode{}
				}
				c = &filterNode{}
				n.next[level] = c
			}
			n = c
		}
		n.count++
	}
	return &filterSet{root: root}
}

// matches returns how many of the filters match topic.
func (s *filterSet) matches(topic string) int {
	if s.root == nil {
		var buf [stackLevels]string
		levels := splitLevels(topic, buf[:0])
		n := 0
		for _, f := range s.list {
			if matchLevels(f, levels) {
				n++
			}
		}
		return n
	}
	return s.root.matches(topic, strings.HasPrefix(topic, "$"), true)
}

// matches counts the filters below n that match the rest of a topic; first
// is true at its first level, where a wildcard does not match a topic
// starting with "$".
func (n *filterNode) matches(topic string, dollar, first bool) int {
	if n.next == nil {
		return 0
	}
	total := 0
	wild := !(first && dollar)
	if c := n.next["#"]; c != nil && wild {
		total += c.count // "a/#" also matches "a" [MQTT-4.7.1-2], counted at "a"'s node
	}
	level, rest, more := strings.Cut(topic, "/")
	for _, key := range [2]string{level, "+"} {
		c := n.next[key]
		if c == nil || (key == "+" && (!wild || level == "+")) {
			continue
		}
		if !more {
			total += c.count
			if h := c.next["#"]; h != nil {
				total += h.count
			}
			continue
		}
		total += c.matches(rest, dollar, false)
	}
	return total
}

// matchFilter reports whether topic matches the subscription filter, by the
// rules of MQTT 3.1.1 section 4.7: "+" is one level, "#" the rest, and a
// wildcard in the first level does not match a topic starting with "$".
func matchFilter(filter, topic string) bool {
	var fb, tb [stackLevels]string
	return matchLevels(splitLevels(filter, fb[:0]), splitLevels(topic, tb[:0]))
}

// stackLevels is how many levels of a topic dispatch splits without
// allocating; deeper topics match all the same.
const stackLevels = 16

// splitLevels appends the "/"-separated levels of s to into.
func splitLevels(s string, into []string) []string {
	for {
		l, rest, more := strings.Cut(s, "/")
		into = append(into, l)
		if !more {
			return into
		}
		s = rest
	}
}

// matchLevels is matchFilter on a filter and a topic split into levels.
func matchLevels(filter, topic []string) bool {
	if len(filter) > 0 && (filter[0] == "+" || filter[0] == "#") &&
		len(topic) > 0 && strings.HasPrefix(topic[0], "$") {
		return false
	}
	for i, f := range filter {
		if f == "#" {
			return true // "a/#" also matches "a" [MQTT-4.7.1-2]
		}
		if i >= len(topic) || (f != "+" && f != topic[i]) {
			return false
		}
	}
	return len(filter) == len(topic)
}

// Publish publishes payload on topic. It fails with ErrRetainedCommand for
// a retained message on a cmd topic, with ErrInvalidTopic for a topic that
// is empty, has wildcards or starts with $, and with ErrClosed after the
// Bus or the Broker closed. Subscribers on the bus are called before it
// returns; a device gets the message at the QoS it subscribed with, up to
// qos.
func (b *Bus) Publish(topic string, qos byte, retained bool, payload []byte) error {
	if qos > 2 {
		return fmt.Errorf("publish %q: qos %d above 2", clip(topic), qos)
	}
	if topic == "" || strings.HasPrefix(topic, "$") || !mqtt.IsValidFilter(topic, true) {
		return fmt.Errorf("publish %q: %w", clip(topic), ErrInvalidTopic)
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed || !b.b.enter() {
		return ErrClosed
	}
	defer b.b.leave()

	if retained && isCmdTopic(topic) {
		b.b.hook.refuse(b.b.bus, nil, actionPublish, reasonRetainedCmd, "topic", clip(topic))
		return fmt.Errorf("publish %q: %w", clip(topic), ErrRetainedCommand)
	}

	err := b.b.srv.InjectPacket(b.b.bus, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retained},
		TopicName:   topic,
		// The caller may reuse its buffer; queued copies must not change.
		Payload: append([]byte(nil), payload...),
		// Mochi checks that QoS 1 and 2 publishes carry a packet id but
		// handles inline publishes as already acknowledged.
		PacketID: uint16(qos),
	})
	if err != nil {
		return fmt.Errorf("publish %q: %w", clip(topic), err)
	}
	return nil
}

// Close removes the subscriptions made through this Bus. A handler call
// already under way may still finish after Close returns. Closing twice is
// harmless.
func (b *Bus) Close() error {
	b.mu.Lock()
	subs := b.subs
	b.subs, b.closed = nil, true
	b.mu.Unlock()

	for _, s := range subs {
		b.b.subs.remove(s.id)
	}
	return nil
}

// busHandler is one Bus subscription.
type busHandler struct {
	id     int
	levels []string // the filter, split once
	h      func(topic string, payload []byte, retained bool)
}

// busHandlers are the subscriptions of every Bus of a broker. Publishes
// read them without a lock; the few changes copy the list.
type busHandlers struct {
	mu   sync.Mutex // serialises changes
	list atomic.Pointer[[]busHandler]
}

func (s *busHandlers) add(hs ...busHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next []busHandler
	if cur := s.list.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, hs...)
	s.list.Store(&next)
}

func (s *busHandlers) remove(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.list.Load()
	if cur == nil {
		return
	}
	next := make([]busHandler, 0, len(*cur))
	for _, h := range *cur {
		if h.id != id {
			next = append(next, h)
		}
	}
	s.list.Store(&next)
}

// dispatch calls every Bus subscription whose filter matches a message
// mochi has just delivered to its subscribers (a publish or a will).
func (s *busHandlers) dispatch(pk packets.Packet) {
	if pk.Ignore || pk.TopicName == "" {
		return
	}
	list := s.list.Load()
	if list == nil {
		return
	}
	// The topic is split once for all the filters.
	var buf [stackLevels]string
	topic := splitLevels(pk.TopicName, buf[:0])
	for _, h := range *list {
		if matchLevels(h.levels, topic) {
			h.h(pk.TopicName, pk.Payload, false)
		}
	}
}
