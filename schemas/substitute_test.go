package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// tricky are values put in place of every field: the bounds of every range
// of the contract and just past them, integers written as decimals, the
// lengths at the limits, each wrong type, and null.
var tricky = []string{
	`null`, `true`, `false`, `{}`, `[]`, `[{}]`, `""`, `"a"`, `"A"`, `"a b"`, `"é"`,
	`-50`, `-50.000000000000000001`, `-40`, `-41`, `-1`, `-0`, `0`, `0.5`, `1`, `1.0`, `1e0`,
	`8`, `15.9999999999999999999`, `16`, `32`, `32.0000000000000000001`, `64`, `65`, `70`,
	`70.5`, `100`, `100.0001`, `150`, `150.5`, `600`, `601`, `1000`, `1001`, `86400`,
	`86401`, `100000`, `100000.5`, `9007199254740991`, `9007199254740992`, `1e300`, `-1e300`,
	`"cool"`, `"auto"`, `"open"`, `"closed"`, `"normal"`, `"charging"`, `"pass"`, `"face"`,
	`"boot"`, `"fault_raised"`, `"access_granted"`, `"ac.set"`, `"lock.mode"`, `"lock"`,
	`"2028-02-29"`, `"2027-02-29"`, `"2027-04-31"`, `"1999-12-31"`,
	`"12345678"`, `"1234567"`, `"E4"`, `"c:1.2"`,
	`"` + strings.Repeat("x", 32) + `"`, `"` + strings.Repeat("x", 33) + `"`,
	`"` + strings.Repeat("x", 64) + `"`, `"` + strings.Repeat("x", 65) + `"`,
	`"` + strings.Repeat("é", 128) + `"`, `"` + strings.Repeat("é", 129) + `"`,
	`"` + strings.Repeat("~", 256) + `"`, `"` + strings.Repeat("é", 257) + `"`,
}

// TestFieldSubstitutionsAgree takes the valid examples, and for each field
// (at the top, in the first charger slot, in command args) replaces its
// value with each tricky value, or removes it, and holds the decoder to the
// schema on the result.
func TestFieldSubstitutionsAgree(t *testing.T) {
	tgs := targets(t)
	done := make(map[string]bool) // message and path already covered
	checks := 0
	for _, ex := range examples(t) {
		if !ex.valid {
			continue
		}
		doc := parseOrdered(t, ex.data)
		for _, path := range fieldPaths(t, ex.name, doc) {
			key := fmt.Sprint(ex.name, " ", doc["name"], " ", strings.Join(path, "."))
			if done[key] {
				continue
			}
			done[key] = true
			for _, v := range append(tricky, "") { // "" removes the field
				b := substitute(t, doc, path, v)
				agree(t, ex.name, tgs[ex.name], b)
				checks++
			}
		}
	}
	if checks < 5000 {
		t.Fatalf("only %d payloads checked", checks)
	}
}

// parseOrdered parses a JSON object keeping numbers exact.
func parseOrdered(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// fieldPaths lists the paths of the fields the schema name knows: its
// properties, those of the first element of slots, and those of args for
// the command doc names.
func fieldPaths(t *testing.T, name string, doc map[string]any) [][]string {
	t.Helper()
	b, err := SchemaFiles.ReadFile(SchemaPath(name))
	if err != nil {
		t.Fatal(err)
	}
	var sch struct {
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(b, &sch); err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for k := range sch.Properties {
		out = append(out, []string{k})
	}
	if slots, ok := doc["slots"].([]any); ok && len(slots) > 0 {
		for _, k := range []string{"slot", "state", "soc_pct", "temp_c"} {
			out = append(out, []string{"slots", "0", k})
		}
	}
	args := map[any][]string{
		CmdACSet: {"power", "mode", "setpoint_c", "fan"}, CmdLockUnlock: {"seconds"},
		CmdLockMode: {"mode"}, CmdChargerSlot: {"slot", "on"},
	}[doc["name"]]
	if _, ok := doc["args"].(map[string]any); ok {
		for _, k := range args {
			out = append(out, []string{"args", k})
		}
	}
	return out
}

// substitute returns doc encoded with the field at path set to the raw JSON
// v, or removed when v is "".
func substitute(t *testing.T, doc map[string]any, path []string, v string) []byte {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cp := parseOrdered(t, b) // a deep copy

	obj := cp
	for i := 0; i < len(path)-1; i++ {
		switch next := obj[path[i]].(type) {
		case map[string]any:
			obj = next
		case []any:
			obj = next[0].(map[string]any)
			i++ // past the index
		}
	}
	last := path[len(path)-1]
	if v == "" {
		delete(obj, last)
	} else {
		obj[last] = json.RawMessage(v)
	}
	out, err := json.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
