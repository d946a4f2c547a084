package broker_test

import (
	"errors"
	"fmt"

	"github.com/waystation/waystation/broker"
)

// The controller's view of the broker: retained statuses first, flagged as
// such, then live messages; a retained command is refused.
func ExampleBus() {
	b, err := broker.New(broker.Options{}) // no listeners: in-process only
	if err != nil {
		panic(err)
	}
	if err := b.Start(); err != nil {
		panic(err)
	}
	defer b.Close()

	bus := b.Bus()
	defer bus.Close()
	status := "waystation/v1/st-1/ac-1/status"
	_ = bus.Publish(status, 1, true, []byte(`{"online":true}`))

	show := func(topic string, payload []byte, retained bool) {
		fmt.Println(topic, string(payload), retained)
	}
	err = bus.Subscribe("waystation/v1/+/+/status", 1, show)
	if err != nil {
		panic(err)
	}
	_ = bus.Publish(status, 1, true, []byte(`{"online":false}`))

	err = bus.Publish("waystation/v1/st-1/ac-1/cmd", 1, true, []byte(`{}`))
	fmt.Println(errors.Is(err, broker.ErrRetainedCommand))
	// Output:
	// waystation/v1/st-1/ac-1/status {"online":true} true
	// waystation/v1/st-1/ac-1/status {"online":false} false
	// true
}
