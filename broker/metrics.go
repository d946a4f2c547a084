package broker

import (
	"fmt"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/system"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the broker's Prometheus series. The client and message
// figures are read from mochi's own atomic counters when scraped, so they
// cost nothing per message.
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
	denied     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, info *system.Info) (*metrics, error) {
	m := &metrics{reg: reg}
	m.denied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_broker_denied_total",
		Help: "Connects, publishes and subscribes the broker refused, by reason.",
	}, []string{"action", "reason"})
	for action, reasons := range deniedLabels {
		for _, r := range reasons {
			m.denied.WithLabelValues(action, r)
		}
	}

	gauge := func(name, help string, v *int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(atomic.LoadInt64(v)) })
	}
	counter := func(name, help string, v *int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(atomic.LoadInt64(v)) })
	}
	cs := []prometheus.Collector{
		m.denied,
		gauge("waystation_broker_clients_connected",
			"MQTT clients connected now.", &info.ClientsConnected),
		counter("waystation_broker_messages_received_total",
			"PUBLISH packets received from clients and the in-process bus.",
			&info.MessagesReceived),
		counter("waystation_broker_messages_sent_total",
			"PUBLISH packets written to clients.", &info.MessagesSent),
		counter("waystation_broker_messages_dropped_total",
			"Messages dropped because a client's write queue was full.",
			&info.MessagesDropped),
	}

	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, fmt.Errorf("register broker metrics: %w", err)
		}
		m.collectors = append(m.collectors, c)
	}
	return m, nil
}

// deny counts one refusal.
func (m *metrics) deny(action, reason string) {
	m.denied.WithLabelValues(action, reason).Inc()
}

// unregister removes the series, so a new broker can register them again.
func (m *metrics) unregister() {
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
	m.collectors = nil
}
