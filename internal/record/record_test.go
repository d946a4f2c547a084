package record

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

type rec struct {
	ID    string          `json:"id"`
	N     int             `json:"n,omitempty"`
	At    time.Time       `json:"at,omitzero"`
	Raw   json.RawMessage `json:"raw,omitempty"`
	Bytes []byte          `json:"bytes"`
	Inner struct {
		Flag bool `json:"flag"`
	} `json:"inner"`
	Old    string    `json:"old,omitempty"`
	SeenAt time.Time `json:"seen_at,omitzero"`
}

// TestDecodeAsEncodingJSON decodes inputs the fast decoder takes and ones
// it refuses (left to encoding/json): each must come out as encoding/json
// has it, error or value.
func TestDecodeAsEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"id":"a","n":3,"at":"2026-12-03T20:20:40.231501945Z","raw":{"x":[1,2]},"bytes":"AQID","inner":{"flag":true}}`,
		`{"id":"b","at":"2026-07-01T08:00:00+08:00","bytes":null}`,
		`{"id":"dup","id":"last wins"}`,             // duplicate names
		"{\"id\":\"bad \xff utf-8\"}",               // invalid UTF-8
		`{"ID":"upper","Inner":{"FLAG":true}}`,      // names in another case
		`{"id":"c","unknown":{"deep":[1,{"a":2}]}}`, // members no field has
		`{"id":"d","at":"2026-12-03T20:20:40.2+08:00"}`,
		`{"id":"e","at":"2026-12-03t20:20:40z"}`, // a lower-case T and Z
		`{"id":"f","n":1.5}`,                     // not an int
		`{"id":"g"`,                              // cut short
		`{"id":"h","at":"yesterday"}`,
		`null`,
		`{"id":"i","raw":null,"bytes":""}`,
		`{"id":"j","seenat":"2026-12-03T20:20:40Z"}`,  // no field of that name
		`{"id":"k","seen-at":"2026-12-03T20:20:40Z"}`, // nor of this one
		`{"id":"l","SEEN_AT":"2026-12-03T20:20:40Z"}`, // a name in another case
	} {
		var want rec
		werr := json.Unmarshal([]byte(in), &want)
		got := rec{ID: "left over", Old: "left over"}
		gerr := Decode([]byte(in), &got)
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%s: err %v, encoding/json's %v", in, gerr, werr)
			continue
		}
		if werr != nil {
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", in, got, want)
		}
		if !got.At.Equal(want.At) || got.At.String() != want.At.String() {
			t.Errorf("%s: time %v, want %v", in, got.At, want.At)
		}
	}
}
