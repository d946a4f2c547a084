package schemas

import (
	"encoding/json"
	"strings"
	"testing"
)

// validJSONCases are inputs at the edges of the JSON grammar.
var validJSONCases = []string{
	``, ` `, `{}`, ` {} `, `{"a":1}`, `{"a":1,"a":2}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`,
	`[]`, `[1,]`, `[1 2]`, `"x"`, `"\u00e9"`, `"\ud800"`, `"\ud800\udc00"`, "\"\xff\"",
	"\"\xed\xa0\x80\"", "\"a\tb\"", `"\x"`, `"\/"`, `null`, `nul`, `true`, `truex`,
	`0`, `-0`, `01`, `-`, `1.`, `.5`, `1e`, `1e+`, `1E-7`, `NaN`, `Infinity`, `0x10`,
	`1 2`, `{} {}`, "\ufeff{}", "{}\x00", `{"a":[{"b":{"c":[1,2,{"d":null}]}}]}`,
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat("[", 9999) + strings.Repeat("]", 9999),
	`{"v":1,"ts":1753150000123,"seq":1234,"power":true,"mode":"cool","setpoint_c":26,"room_c":28.4}`,
}

func TestValidJSONIsJSONValid(t *testing.T) {
	for _, c := range validJSONCases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%.40q) = %v, json.Valid %v", c, got, want)
		}
	}
}
