package schemas

import "fmt"

// MaxAllowListEntries bounds the entries of one allow-list.
const MaxAllowListEntries = 100000

// AccessList is a door terminal's allow-list, published retained by the
// platform on the terminal's access/list topic whenever it changes. The
// terminal admits a listed credential on its own when the platform does
// not answer in time, and reports the version it holds in its telemetry
// (allowlist_version).
type AccessList struct {
	Meta
	// Version grows by one with every change of the station's list.
	Version int64 `json:"version"`
	// Entries are the lowercase hex SHA-256 of every credential token the
	// station admits: a terminal hashes the token it reads and looks it up.
	// Raw tokens never travel in a list.
	Entries []string `json:"entries"`
	// Methods are the access methods the station accepts; absent means all.
	Methods []string `json:"methods,omitempty"`
}

// DecodeAccessList decodes an access/list payload.
func DecodeAccessList(b []byte) (AccessList, error) {
	var raw struct{ ts, seq, version, entries, methods []byte }
	r := reader{index: -1}
	ok := r.object(b, func(key, val []byte) {
		switch string(key) {
		case "ts":
			raw.ts = val
		case "seq":
			raw.seq = val
		case "version":
			raw.version = val
		case "entries":
			raw.entries = val
		case "methods":
			raw.methods = val
		}
	})
	if !ok {
		return AccessList{}, r.err
	}

	var v AccessList
	v.Meta = r.meta(raw.ts, raw.seq)
	v.Version = r.integer(raw.version, "version", true, 1, MaxSafeInt)
	if r.present(raw.entries, "entries", true) {
		v.Entries = r.strings(raw.entries, "entries", 0, MaxAllowListEntries, func(el []byte) string {
			return r.code(el, "", 64, 64, isLowerHex)
		})
	}
	if raw.methods != nil {
		v.Methods = r.strings(raw.methods, "methods", 1, len(accessMethods), func(el []byte) string {
			return r.enum(el, "", true, accessMethods)
		})
	}
	if r.err != nil {
		return AccessList{}, r.err
	}
	return v, nil
}

// strings reads an array of minItems to maxItems strings, each read by
// item; an empty array gives an empty, not nil, slice.
func (r *reader) strings(b []byte, key string, minItems, maxItems int,
	item func(el []byte) string) []string {
	if !r.isType(b, key, '[') {
		return nil
	}
	n := 0
	forElements(b, func(int, []byte) { n++ })
	if n < minItems || n > maxItems {
		r.fail(key, fmt.Sprintf("want %d to %d items, got %d", minItems, maxItems, n))
		return nil
	}

	out := make([]string, 0, n)
	r.parent = key
	forElements(b, func(i int, el []byte) {
		r.index = i
		if r.isType(el, "", '"') {
			out = append(out, item(el))
		}
	})
	r.parent, r.index = "", -1
	return out
}

func isLowerHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' } // [0-9a-f]
