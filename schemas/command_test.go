package schemas

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestCommandValidate(t *testing.T) {
	const exp = 1733213100000
	tests := []struct {
		name  string
		cmd   Command
		field string // "" when valid
	}{
		{"ac.set with Go ints", Command{ID: "c-1", Name: CmdACSet,
			Args: map[string]any{"power": true, "setpoint_c": 26, "mode": ModeCool}, ExpiresAt: exp}, ""},
		{"ac.set float", Command{ID: "c-1", Name: CmdACSet,
			Args: map[string]any{"setpoint_c": float32(25.5)}, ExpiresAt: exp}, ""},
		{"unlock int64", Command{ID: "c-1", Name: CmdLockUnlock,
			Args: map[string]any{"seconds": int64(15)}, ExpiresAt: exp}, ""},
		{"unlock default", Command{ID: "c-1", Name: CmdLockUnlock, ExpiresAt: exp}, ""},
		{"slot uint8", Command{ID: "c_1", Name: CmdChargerSlot,
			Args: map[string]any{"slot": uint8(64), "on": false}, ExpiresAt: exp}, ""},
		{"reboot", Command{Meta: Meta{TS: 1, Seq: 2}, ID: "r", Name: CmdReboot, ExpiresAt: exp}, ""},
		{"ping", Command{ID: "p", Name: CmdPing, ExpiresAt: exp}, ""},
		{"no id", Command{Name: CmdReboot, ExpiresAt: exp}, "id"},
		{"no expiry", Command{ID: "r", Name: CmdReboot}, "expires_at"},
		{"negative ts", Command{Meta: Meta{TS: -1}, ID: "r", Name: CmdReboot, ExpiresAt: exp}, "ts"},
		{"seq beyond 2^53", Command{Meta: Meta{Seq: 1 << 60}, ID: "r", Name: CmdReboot,
			ExpiresAt: exp}, "seq"},
		{"unknown name", Command{ID: "r", Name: "ac.boost", ExpiresAt: exp}, "name"},
		{"setpoint too high", Command{ID: "c", Name: CmdACSet,
			Args: map[string]any{"setpoint_c": 33}, ExpiresAt: exp}, "args.setpoint_c"},
		{"setpoint as string", Command{ID: "c", Name: CmdACSet,
			Args: map[string]any{"setpoint_c": "26"}, ExpiresAt: exp}, "args.setpoint_c"},
		{"unlock fraction", Command{ID: "c", Name: CmdLockUnlock,
			Args: map[string]any{"seconds": 1.5}, ExpiresAt: exp}, "args.seconds"},
		{"mode missing", Command{ID: "c", Name: CmdLockMode, Args: map[string]any{"why": "x"},
			ExpiresAt: exp}, "args.mode"},
		{"args empty", Command{ID: "c", Name: CmdLockMode, Args: map[string]any{}, ExpiresAt: exp},
			"args"}, // an empty map is left out by omitempty
		{"NaN", Command{ID: "c", Name: CmdACSet,
			Args: map[string]any{"setpoint_c": math.NaN()}, ExpiresAt: exp}, "args"},
		{"id with slash", Command{ID: "a/b", Name: CmdReboot, ExpiresAt: exp}, "id"},
	}
	for _, tc := range tests {
		err := tc.cmd.Validate()
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want an error on %q", tc.name, err, tc.field)
		}
	}
}

func TestCommandArgs(t *testing.T) {
	c, err := DecodeCommand([]byte(`{"id": "c", "name": "ac.set", "expires_at": 5,
		"args": {"power": true, "mode": "heat", "setpoint_c": 18.5, "fan": "low", "swing": 3}}`))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := c.ArgBool("power"); !ok || !v {
		t.Errorf("power %v %v", v, ok)
	}
	if v, ok := c.ArgString("mode"); !ok || v != ModeHeat {
		t.Errorf("mode %q %v", v, ok)
	}
	if v, ok := c.ArgFloat("setpoint_c"); !ok || v != 18.5 {
		t.Errorf("setpoint_c %v %v", v, ok)
	}
	if _, ok := c.ArgInt("setpoint_c"); ok {
		t.Error("18.5 read as an int")
	}
	if _, ok := c.ArgFloat("swing"); ok {
		t.Error("an unknown argument read as a number; it is kept raw")
	}
	if _, ok := c.ArgBool("mode"); ok {
		t.Error("a string read as a bool")
	}
	if _, ok := c.ArgString("absent"); ok {
		t.Error("an absent argument found")
	}

	built := Command{Args: map[string]any{"a": 3, "b": uint16(7), "c": json.Number("12"), "d": 2.0}}
	for name, want := range map[string]int{"a": 3, "b": 7, "c": 12, "d": 2} {
		if v, ok := built.ArgInt(name); !ok || v != want {
			t.Errorf("ArgInt(%s) = %d, %v", name, v, ok)
		}
	}
	if _, ok := (Command{}).ArgFloat("x"); ok {
		t.Error("nil Args has an argument")
	}
}
