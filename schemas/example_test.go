package schemas_test

import (
	"errors"
	"fmt"

	"github.com/waystation/waystation/schemas"
)

func ExampleParseTopic() {
	t, err := schemas.ParseTopic("waystation/v1/ys-017/ac-1/cmd/result")
	fmt.Println(t.Station, t.Device, t.Channel, err)

	_, err = schemas.ParseTopic("waystation/v1/alerts/ac-1/status")
	fmt.Println(errors.Is(err, schemas.ErrTopic))
	// Output:
	// ys-017 ac-1 cmd/result <nil>
	// true
}

func ExampleDecodeTelemetry() {
	payload := []byte(`{"ts": 1733212800123, "power": true, "mode": "cool",
		"setpoint_c": 26, "room_c": 31.4, "humidity_pct": 68}`)
	t, err := schemas.DecodeTelemetry(schemas.KindAC, payload)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(t.AC.Mode, t.AC.SetpointC, t.AC.RoomC, *t.AC.HumidityPct, t.AC.OutdoorC == nil)

	// "Power" is not "power": the required field is missing.
	_, err = schemas.DecodeTelemetry(schemas.KindAC,
		[]byte(`{"Power": true, "mode": "cool", "setpoint_c": 26, "room_c": 31}`))
	fmt.Println(err, errors.Is(err, schemas.ErrInvalid))
	// Output:
	// cool 26 31.4 68 true
	// power: required true
}

func ExampleCommand_Validate() {
	c := schemas.Command{
		ID:        "pre-cool-ys-017-0430",
		Name:      schemas.CmdACSet,
		Args:      map[string]any{"power": true, "mode": schemas.ModeCool, "setpoint_c": 35},
		ExpiresAt: 1733213100000,
	}
	fmt.Println(c.Validate())

	c.Args["setpoint_c"] = 26
	fmt.Println(c.Validate())
	// Output:
	// args.setpoint_c: out of range 16..32
	// <nil>
}
