// Package record decodes the JSON records the platform keeps in bbolt
// quickly enough to load a fleet's state at start-up.
//
// encoding/json spends most of a record on checking the whole input before
// decoding it and on reflection per field: at 40,000 devices the registry,
// the twins and the broker's retained statuses took about 1.3 s of CPU to
// load. The decoder of github.com/go-json-experiment/json (the proposed
// encoding/json/v2) reads the same records in a fraction of that. It is
// stricter than encoding/json (duplicate names, invalid UTF-8, loose
// timestamps are errors), so a record it refuses is decoded again by
// encoding/json: anything encoding/json accepted still loads, and the
// stored format is unchanged.
package record

import (
	"encoding/json"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// like1 makes the decoder match member names to fields as encoding/json
// does: without regard to case, but with "_" and "-" significant ("seenat"
// is not "seen_at").
var like1 = jsonv2.JoinOptions(jsonv2.MatchCaseInsensitiveNames(true),
	jsonv1.MatchCaseSensitiveDelimiter(true))

// Decode decodes the JSON record data into *v, which it first zeroes, as
// encoding/json.Unmarshal into a zero value would.
func Decode[T any](data []byte, v *T) error {
	var zero T
	*v = zero
	if jsonv2.Unmarshal(data, v, like1) == nil {
		return nil
	}
	*v = zero
	return json.Unmarshal(data, v)
}
