package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
)

// externalFlags are the flags of serve for running past one machine: an
// external MQTT broker instead of the embedded one.
type externalFlags struct {
	broker       string // tcp://host:port; "" for the embedded broker
	user         string
	passwordFile string
	clientID     string
	persistent   bool
	partition    string               // "I/N"; "" for all stations
	part         controller.Partition // parsed by check

	// Not flags: tests shorten the reconnect wait.
	maxReconnect time.Duration
}

func addExternalFlags(f *pflag.FlagSet, o *externalFlags) {
	f.StringVar(&o.broker, "broker", "", "attach to this external MQTT broker or cluster "+
		"(tcp://host:port, ssl://host:port) instead of running the embedded one")
	f.StringVar(&o.user, "broker-user", controllerUser, "the controller's user on --broker")
	f.StringVar(&o.passwordFile, "broker-password-file", "", "file holding the controller's "+
		"password on --broker")
	f.StringVar(&o.clientID, "broker-client-id", "", "the controller's MQTT client id on --broker, "+
		"one per controller (default waystation-controller, with the partition)")
	f.BoolVar(&o.persistent, "broker-persistent-session", false, "ask --broker to keep the "+
		"controller's session and queue its messages while it is away")
	f.StringVar(&o.partition, "partition", "", "with --broker: own only partition I of N of the "+
		"stations (e.g. 1/4), split by a hash of the station id; run one controller per partition")
}

// check refuses flag values that make no sense.
func (o *externalFlags) check(demo bool) error {
	if o.broker == "" {
		if o.passwordFile != "" || o.persistent || o.clientID != "" || o.partition != "" {
			return errors.New("--broker-password-file, --broker-client-id, --partition and " +
				"--broker-persistent-session go with --broker")
		}
		return nil
	}
	if o.partition != "" {
		p, err := controller.ParsePartition(o.partition)
		if err != nil {
			return fmt.Errorf("--partition: %w", err)
		}
		o.part = p
	}
	u, err := url.Parse(o.broker)
	if err != nil || u.Host == "" || u.Port() == "" {
		return fmt.Errorf("--broker %q: want tcp://host:port", o.broker)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return fmt.Errorf("--broker %q: scheme %q: want tcp, ssl, ws or wss", o.broker, u.Scheme)
	}
	if strings.TrimSpace(o.user) == "" {
		return errors.New("--broker-user is empty: give the controller's user on the broker")
	}
	if o.passwordFile == "" {
		return errors.New("--broker needs --broker-password-file: the controller logs in to " +
			"the broker with its own user and password")
	}
	if _, err := readPasswordFile(o.passwordFile, "--broker-password-file"); err != nil {
		return err
	}
	if demo {
		return errors.New("--demo runs its simulated devices on the embedded broker: " +
			"leave out --broker")
	}
	return nil
}

// openExternal connects to the external broker; the embedded one stays off.
func (s *server) openExternal() error {
	o := s.o.ext
	pass, err := readPasswordFile(o.passwordFile, "--broker-password-file")
	if err != nil {
		return err
	}
	id := o.clientID
	if id == "" {
		id = "waystation-controller"
		if o.part.On() {
			id += fmt.Sprintf("-%dof%d", o.part.Index, o.part.Count)
		}
	}
	s.ext, err = controller.DialMQTTBus(controller.MQTTBusOptions{
		URL: o.broker, Username: o.user, Password: pass, ClientID: id,
		Persistent: o.persistent, MaxReconnectInterval: o.maxReconnect,
		Logger: s.log, Registerer: s.reg,
	})
	if err != nil {
		return fmt.Errorf("--broker: %w", err)
	}
	return nil
}

// bus is the controller's MQTT connection: onto the external broker, or
// the embedded broker's in-process client.
func (s *server) bus() controller.Bus {
	if s.ext != nil {
		return s.ext
	}
	return s.mqtt.Bus()
}

// startBroker starts the embedded broker; an external one is already
// connected.
func (s *server) startBroker() error {
	if s.mqtt == nil {
		s.log.Info("using an external mqtt broker", "broker", s.o.ext.broker)
		s.logPartition()
		return nil
	}
	if err := s.mqtt.Start(); err != nil {
		return fmt.Errorf("start broker: %w (its addresses are --mqtt and --ws)", err)
	}
	s.log.Info("mqtt listening", "tcp", s.mqtt.TCPAddr(), "ws", s.mqtt.WSAddr())
	return nil
}

// openLogins lets devices in once ingest has subscribed. An external
// broker lets them in by itself: what they send before the controller
// subscribes reaches it only as retained statuses.
func (s *server) openLogins() {
	if s.mqtt != nil {
		s.mqtt.OpenLogins()
	}
}

// closeBroker stops the embedded broker, or leaves the external one: no
// more messages come in. Calling it twice is harmless.
func (s *server) closeBroker() {
	if s.mqtt != nil {
		if err := s.mqtt.Close(); err != nil {
			s.log.Error("close broker", "err", err)
		}
	}
	if s.ext != nil {
		if err := s.ext.Close(); err != nil {
			s.log.Error("close broker connection", "err", err)
		}
	}
}

// registryOptions are the registry's options: with a partition it keeps
// only its own stations, and each station added is subscribed to before
// the call that added it returns.
func (s *server) registryOptions() devices.RegistryOptions {
	o := devices.RegistryOptions{Now: func() time.Time { return s.clock.Now() }}
	p := s.o.ext.part
	if !p.On() {
		return o
	}
	o.Owner = p.Check
	o.StationAdded = func(id string) {
		if s.in == nil {
			return // ingest subscribes to every station there is when it starts
		}
		if err := s.in.SubscribeStations(id); err != nil {
			s.log.Error("subscribe to a new station", "station", id, "err", err)
		}
	}
	return o
}

// logPartition says which stations this controller serves.
func (s *server) logPartition() {
	p := s.o.ext.part
	if !p.On() {
		return
	}
	s.log.Info("serving one partition of the stations", "partition", p.String(),
		"stations", len(s.devs.Stations()), "other_partitions_stations_in_file", s.devs.Foreign())
}
