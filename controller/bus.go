package controller

// Handler receives one MQTT message. Bus implementations call it on their
// own goroutines and expect it to return quickly.
type Handler func(topic string, payload []byte, retained bool)

// Bus is the controller's MQTT connection.
type Bus interface {
	// Subscribe delivers messages matching filter, retained ones included.
	Subscribe(filter string, qos byte, h func(topic string, payload []byte, retained bool)) error
	// Publish sends a message.
	Publish(topic string, qos byte, retained bool, payload []byte) error
	// Close ends the subscriptions made through the bus.
	Close() error
}
