package schemas

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// The decoders read payloads with the small scanner below rather than with
// json.Unmarshal into structs, for two reasons. encoding/json matches keys
// case-insensitively and turns null into "absent", while a JSON Schema
// validator matches keys exactly and calls null a wrong type; and
// unmarshalling into a map allocates for every member, while the scanner only
// slices the payload. Every function here expects input that validJSON has
// accepted: the syntax is checked once, up front, and the scanner then never
// needs to look for errors.

// validOptions make jsontext accept what encoding/json's Valid accepts:
// by default it also refuses repeated member names and invalid UTF-8.
var validOptions = []jsontext.Options{
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
}

// validJSON reports whether b is one JSON value, as json.Valid does (the
// tests and FuzzValidJSON hold it to that), in half its time: every message
// a device sends is checked.
func validJSON(b []byte) bool {
	return jsontext.Value(b).IsValid(validOptions...)
}

// forMembers calls fn for every member of the JSON object b, in order, with
// the key unescaped and the raw value. It returns false if b is not an
// object. A key repeats when the payload repeats it; callers let the last one
// win, as encoding/json and the JSON Schema validators built on it do.
func forMembers(b []byte, fn func(key, val []byte)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if b[i] == '}' {
		return true
	}
	for {
		end := stringEnd(b, i)
		key := unquoteKey(b[i:end])
		i = skipSpace(b, end)
		i = skipSpace(b, i+1) // the colon
		vend := valueEnd(b, i)
		fn(key, b[i:vend])
		i = skipSpace(b, vend)
		if b[i] == '}' {
			return true
		}
		i = skipSpace(b, i+1) // the comma
	}
}

// forElements calls fn for every element of the JSON array b with its index.
// It returns false if b is not an array.
func forElements(b []byte, fn func(i int, val []byte)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return false
	}
	i = skipSpace(b, i+1)
	if b[i] == ']' {
		return true
	}
	for n := 0; ; n++ {
		vend := valueEnd(b, i)
		fn(n, b[i:vend])
		i = skipSpace(b, vend)
		if b[i] == ']' {
			return true
		}
		i = skipSpace(b, i+1)
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; ; j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
}

// valueEnd returns the index just past the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; ; j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
	}
	for j := i; j < len(b); j++ {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
	}
	return len(b)
}

// unquoteKey returns the text of the quoted key q. Keys are almost always
// plain ASCII and are then returned in place.
func unquoteKey(q []byte) []byte {
	if !needsDecoding(q[1 : len(q)-1]) {
		return q[1 : len(q)-1]
	}
	s, _ := unquote(q)
	return []byte(s)
}

// unquote returns the text of the JSON string q, decoded as encoding/json
// does (invalid UTF-8 becomes U+FFFD), which is what a validator sees. The
// second result is false if q is not a string.
func unquote(q []byte) (string, bool) {
	if len(q) < 2 || q[0] != '"' {
		return "", false
	}
	if !needsDecoding(q[1 : len(q)-1]) {
		return string(q[1 : len(q)-1]), true
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return "", false
	}
	return s, true
}

// needsDecoding reports whether the inside of a JSON string differs from its
// text: it holds an escape or invalid UTF-8.
func needsDecoding(inner []byte) bool {
	ascii := true
	for _, c := range inner {
		if c == '\\' {
			return true
		}
		ascii = ascii && c < utf8.RuneSelf
	}
	return !ascii && !utf8.Valid(inner)
}

// plainIs reports whether the JSON string q is exactly want without any
// decoding: the allocation-free path for enumerations, whose values are
// plain ASCII.
func plainIs(q []byte, want string) bool {
	return len(q) == len(want)+2 && string(q[1:len(q)-1]) == want
}

// number is an exact reading of a JSON number literal, enough to compare it
// with integer bounds and to tell an integer, as a JSON Schema validator does
// with rational arithmetic: 1.0 and 1e2 are integers, 32.0000000000000001
// is above 32.
type number struct {
	neg  bool
	huge bool   // |x| >= 1e18, beyond every bound of the contract
	ip   uint64 // integer part of |x|, when not huge
	frac bool   // x has a nonzero fractional part
	lit  []byte // the literal, to compute the float value
	// digits and scale give |x| = digits × 10^scale exactly when exact.
	digits uint64
	scale  int
	exact  bool
}

// maxIntDigits is the most integer digits a number may have and still be
// read exactly into an uint64.
const maxIntDigits = 18

// readNumber reads the literal b; ok is false if b is not a number.
func readNumber(b []byte) (n number, ok bool) {
	if len(b) == 0 {
		return n, false
	}
	i := 0
	if b[0] == '-' {
		n.neg = true
		i++
	}
	if i >= len(b) || b[i] < '0' || b[i] > '9' {
		return n, false
	}
	n.lit = b

	// Split the literal into integer digits, fraction digits and exponent.
	intStart := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	intDigits := b[intStart:i]
	var fracDigits []byte
	if i < len(b) && b[i] == '.' {
		i++
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		fracDigits = b[s:i]
	}
	exp := 0
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		for ; i < len(b); i++ {
			// Saturate: past a billion the number is out of every range
			// (or zero) whatever the digits say.
			if exp < 1_000_000_000 {
				exp = exp*10 + int(b[i]-'0')
			}
		}
		if eneg {
			exp = -exp
		}
	}

	// The significant digits D (no leading or trailing zeros) and the
	// position p of the decimal point within them: |x| = 0.D × 10^p.
	all := digitSeq{intDigits, fracDigits}
	first, last := -1, -1
	for k := 0; k < all.len(); k++ {
		if all.at(k) != '0' {
			if first < 0 {
				first = k
			}
			last = k
		}
	}
	if first < 0 {
		n.exact, n.digits, n.scale = true, 0, 0
		return n, true
	}
	nd := last - first + 1
	p := len(intDigits) - first + exp

	// Integer part and fraction.
	switch {
	case p > maxIntDigits:
		n.huge = true
		n.frac = nd > p
	case p <= 0:
		n.frac = true
	default:
		for k := 0; k < p; k++ {
			d := uint64(0)
			if k < nd {
				d = uint64(all.at(first+k) - '0')
			}
			n.ip = n.ip*10 + d
		}
		n.frac = nd > p
	}

	// Digits and scale, for the fast exact float conversion.
	if nd <= 15 {
		for k := 0; k < nd; k++ {
			n.digits = n.digits*10 + uint64(all.at(first+k)-'0')
		}
		n.scale = p - nd
		n.exact = true
	}
	return n, true
}

// digitSeq is the integer and fraction digits of a literal read as one
// sequence, without copying them.
type digitSeq struct{ a, b []byte }

func (d digitSeq) len() int { return len(d.a) + len(d.b) }

func (d digitSeq) at(k int) byte {
	if k < len(d.a) {
		return d.a[k]
	}
	return d.b[k-len(d.a)]
}

// cmp compares x with the integer bound v: -1, 0 or +1.
func (n number) cmp(v int64) int {
	if n.huge {
		if n.neg {
			return -1
		}
		return 1
	}
	if !n.neg {
		x := int64(n.ip)
		switch {
		case x < v:
			return -1
		case x > v:
			return 1
		case n.frac:
			return 1
		}
		return 0
	}
	// x = -ip - f with 0 <= f < 1.
	m := -int64(n.ip)
	switch {
	case m < v:
		return -1
	case m > v:
		return 1 // x > m-1 >= v
	case n.frac:
		return -1
	}
	return 0
}

// in reports whether lo <= x <= hi.
func (n number) in(lo, hi int64) bool { return n.cmp(lo) >= 0 && n.cmp(hi) <= 0 }

// isInt reports whether x is an integer.
func (n number) isInt() bool { return !n.frac }

// int returns x, which must be an integer within the int64 range.
func (n number) int() int64 {
	if n.neg {
		return -int64(n.ip)
	}
	return int64(n.ip)
}

// float returns the float64 nearest to x.
func (n number) float() float64 {
	// Up to 15 digits and 10^22 both are exact in a float64, so one
	// multiplication or division rounds correctly.
	if n.exact && n.scale >= -22 && n.scale <= 22 {
		f := float64(n.digits)
		if n.scale >= 0 {
			f *= pow10[n.scale]
		} else {
			f /= pow10[-n.scale]
		}
		if n.neg {
			f = -f
		}
		return f
	}
	f, err := strconv.ParseFloat(string(n.lit), 64)
	if err != nil && !math.IsInf(f, 0) {
		return 0
	}
	return f
}

var pow10 = [...]float64{
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
}
