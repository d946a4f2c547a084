package schemas

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"testing"
)

// The fuzz targets hold the decoders to the schema files: for any input,
// both accept or both refuse, and nothing panics. They are seeded with the
// example payloads; `go test` runs the seeds, `go test -fuzz` searches on.

// seed adds every example of the schema name to f.
func seed(f *testing.F, name string) {
	for _, ex := range examples(f) {
		if ex.name == name {
			f.Add(ex.data)
		}
	}
}

// fuzzAgree is the body shared by the decoder fuzz targets.
func fuzzAgree(t *testing.T, name string, b []byte) {
	if absurdExponent.Match(b) {
		// Still nothing may panic.
		tg := targets(t)[name]
		_, _ = DecodePayload(tg.ch, tg.kind, b)
		return
	}
	agree(t, name, targets(t)[name], b)
}

func FuzzDecodeStatus(f *testing.F) {
	seed(f, "status")
	f.Fuzz(func(t *testing.T, b []byte) { fuzzAgree(t, "status", b) })
}

// FuzzDecodeTelemetry takes the kind from the input too; a kind outside
// the contract must be refused whatever the payload.
func FuzzDecodeTelemetry(f *testing.F) {
	for i, k := range Kinds {
		for _, ex := range examples(f) {
			if ex.name == SchemaName(ChannelTelemetry, k) {
				f.Add(uint8(i), ex.data)
			}
		}
	}
	f.Add(uint8(len(Kinds)), []byte(`{"power": true}`))
	f.Fuzz(func(t *testing.T, k uint8, b []byte) {
		if int(k) >= len(Kinds) {
			kind := Kind([]string{"", "fridge", "AC", "ac "}[int(k)%4])
			if _, err := DecodeTelemetry(kind, b); !errors.Is(err, ErrInvalid) {
				t.Fatalf("kind %q accepted: %v", kind, err)
			}
			return
		}
		fuzzAgree(t, SchemaName(ChannelTelemetry, Kinds[k]), b)
	})
}

func FuzzDecodeEvent(f *testing.F) {
	seed(f, "event")
	f.Fuzz(func(t *testing.T, b []byte) { fuzzAgree(t, "event", b) })
}

func FuzzDecodeCommand(f *testing.F) {
	seed(f, "cmd")
	f.Fuzz(func(t *testing.T, b []byte) { fuzzAgree(t, "cmd", b) })
}

func FuzzDecodeCommandResult(f *testing.F) {
	seed(f, "cmd-result")
	f.Fuzz(func(t *testing.T, b []byte) { fuzzAgree(t, "cmd-result", b) })
}

func FuzzDecodeAccessRequest(f *testing.F) {
	seed(f, "access-req")
	f.Fuzz(func(t *testing.T, b []byte) { fuzzAgree(t, "access-req", b) })
}

func FuzzDecodeAccessResponse(f *testing.F) {
	seed(f, "access-res")
	f.Fuzz(func(t *testing.T, b []byte) { fuzzAgree(t, "access-res", b) })
}

func FuzzDecodeAccessList(f *testing.F) {
	seed(f, "access-list")
	f.Fuzz(func(t *testing.T, b []byte) { fuzzAgree(t, "access-list", b) })
}

// topicOracle is the topic grammar written as one regular expression, an
// independent statement of what ParseTopic accepts.
var topicOracle = regexp.MustCompile(`^waystation/v1/([a-z0-9][a-z0-9-]{0,31})/` +
	`([a-z0-9][a-z0-9-]{0,31})/(status|telemetry|event|cmd|cmd/result|access/req|access/res|` +
	`access/list)$`)

func FuzzParseTopic(f *testing.F) {
	for _, tc := range topicTests {
		f.Add(tc.topic)
	}
	f.Fuzz(func(t *testing.T, name string) {
		tp, err := ParseTopic(name)
		m := topicOracle.FindStringSubmatch(name)
		want := m != nil && m[1] != AlertsStation
		if (err == nil) != want {
			t.Fatalf("ParseTopic(%q) = %+v, %v; the grammar says valid=%v", name, tp, err, want)
		}
		if err != nil {
			if !errors.Is(err, ErrTopic) {
				t.Fatalf("error %v does not wrap ErrTopic", err)
			}
			return
		}
		if tp.String() != name || tp.Station != m[1] || tp.Device != m[2] {
			t.Fatalf("ParseTopic(%q) = %+v", name, tp)
		}
	})
}

// FuzzReadNumber holds the exact number reading to math/big and strconv:
// comparisons with bounds, integer-ness and the float value.
func FuzzReadNumber(f *testing.F) {
	for _, s := range []string{
		"0", "-0", "1", "-1", "16", "15.999999999999999999", "32.0000000000000000001",
		"1e2", "1.0", "1.5", "-0.5", "-50", "-50.0000000000000001", "1e-9", "1e400",
		"-1e400", "123456789012345678", "1234567890123456789", "9007199254740991",
		"9007199254740992", "0.000000000000000000000000123e25", "4.9e-324", "1.7976931348623157e308",
		"100000000000000000000e-20", "-0.0e5",
	} {
		f.Add(s, int64(16))
	}
	f.Fuzz(func(t *testing.T, lit string, bound int64) {
		if !numberLiteral.MatchString(lit) || absurdExponent.MatchString(lit) {
			return
		}
		n, ok := readNumber([]byte(lit))
		if !ok {
			t.Fatalf("readNumber(%q) refused a number", lit)
		}
		exact, _ := new(big.Rat).SetString(lit)

		if bound > MaxSafeInt || bound < -MaxSafeInt {
			bound %= MaxSafeInt
		}
		if got, want := n.cmp(bound), exact.Cmp(new(big.Rat).SetInt64(bound)); got != want {
			t.Fatalf("cmp(%s, %d) = %d, want %d", lit, bound, got, want)
		}
		if n.isInt() != exact.IsInt() {
			t.Fatalf("isInt(%s) = %v", lit, n.isInt())
		}
		if n.isInt() && n.in(-MaxSafeInt, MaxSafeInt) && n.int() != exact.Num().Int64() {
			t.Fatalf("int(%s) = %d", lit, n.int())
		}
		want, err := strconv.ParseFloat(lit, 64)
		if err != nil && !math.IsInf(want, 0) {
			t.Fatal(err)
		}
		if got := n.float(); got != want {
			t.Fatalf("float(%s) = %v, want %v", lit, got, want)
		}
	})
}

// numberLiteral is the JSON number grammar (RFC 8259, section 6).
var numberLiteral = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// validJSON accepts exactly what json.Valid accepts.
func FuzzValidJSON(f *testing.F) {
	for _, s := range validJSONCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid %v", b, got, want)
		}
	})
}
