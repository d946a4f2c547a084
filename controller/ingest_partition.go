package controller

import (
	"errors"
	"fmt"

	"github.com/waystation/waystation/schemas"
)

// ManySubscriber is a Bus that can make many subscriptions in few round
// trips, or replay its retained messages once for all of them; ingest's
// subscriptions (a partition's thousands of station filters, or the five
// device channels) use it when the bus offers it.
type ManySubscriber interface {
	SubscribeMany(filters []string, qos byte, h func(topic string, payload []byte, retained bool)) error
}

// subscribe makes ingest's subscriptions: one filter per channel for every
// station, or with a partition, per station for its own.
func (in *Ingest) subscribe() error {
	if !in.o.Partition.On() {
		var filters []string
		for _, ch := range schemas.Channels {
			if ch.FromDevice() {
				filters = append(filters, schemas.DeviceFilter(ch))
			}
		}
		// One call replays the retained messages once for every channel:
		// the embedded broker walks its 40,000 retained statuses once
		// rather than once a channel.
		if many, ok := in.o.Bus.(ManySubscriber); ok {
			if err := many.SubscribeMany(filters, 1, in.enqueue); err != nil {
				return fmt.Errorf("subscribe to the device channels: %w", err)
			}
			return nil
		}
		for _, f := range filters {
			if err := in.o.Bus.Subscribe(f, 1, in.enqueue); err != nil {
				return fmt.Errorf("subscribe %s: %w", f, err)
			}
		}
		return nil
	}
	var ids []string
	for _, st := range in.o.Registry.Stations() {
		ids = append(ids, st.ID)
	}
	if err := in.SubscribeStations(ids...); err != nil {
		return err
	}
	in.log.Info("subscribed to the partition's stations", "partition", in.o.Partition,
		"stations", len(in.stationSub))
	return nil
}

// stationFilters returns the filters of the channels devices publish on at
// one station: waystation/v1/{station}/+/{channel}.
func stationFilters(station string) []string {
	var out []string
	for _, ch := range schemas.Channels {
		if ch.FromDevice() {
			out = append(out, schemas.Prefix+station+"/+/"+string(ch))
		}
	}
	return out
}

// SubscribeStations subscribes to the device topics of the given stations
// of ingest's partition that it does not yet follow; the others are left
// alone. Without a partition ingest follows every station already, and it
// does nothing. Safe to call at any time, from any goroutine: a station
// added at run time is followed before the call that added it returns.
func (in *Ingest) SubscribeStations(ids ...string) error {
	if !in.o.Partition.On() {
		return nil
	}
	in.stationMu.Lock()
	defer in.stationMu.Unlock()
	if in.stationSub == nil {
		in.stationSub = map[string]bool{}
	}
	var todo, filters []string
	for _, id := range ids {
		if in.stationSub[id] || !in.o.Partition.Owns(id) {
			continue
		}
		todo = append(todo, id)
		filters = append(filters, stationFilters(id)...)
	}
	if len(filters) == 0 {
		return nil
	}
	var err error
	if many, ok := in.o.Bus.(ManySubscriber); ok {
		err = many.SubscribeMany(filters, 1, in.enqueue)
	} else {
		var errs []error
		for _, f := range filters {
			errs = append(errs, in.o.Bus.Subscribe(f, 1, in.enqueue))
		}
		err = errors.Join(errs...)
	}
	if err != nil {
		return fmt.Errorf("subscribe to %d stations: %w", len(todo), err)
	}
	for _, id := range todo {
		in.stationSub[id] = true
	}
	return nil
}
