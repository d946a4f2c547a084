package schemas

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeAccessList(t *testing.T) {
	h := strings.Repeat("ab", 32)
	l, err := DecodeAccessList([]byte(`{"version": 4, "entries": ["` + h + `"], "methods": ["nfc"]}`))
	want := AccessList{Version: 4, Entries: []string{h}, Methods: []string{MethodNFC}}
	if err != nil || !reflect.DeepEqual(l, want) {
		t.Fatalf("got %+v, %v", l, err)
	}
	l, err = DecodeAccessList([]byte(`{"version": 1, "entries": []}`))
	if err != nil || l.Entries == nil || len(l.Entries) != 0 {
		t.Fatalf("an empty list must decode to an empty slice: %#v %v", l.Entries, err)
	}

	for _, tc := range []struct{ payload, field string }{
		{`{"version": 1, "entries": ["` + h + `", "x"]}`, "entries[1]"},
		{`{"version": 1, "entries": [true]}`, "entries[0]"},
		{`{"version": 1, "entries": [], "methods": ["face", "palm"]}`, "methods[1]"},
		{`{"version": 1, "entries": {}}`, "entries"},
	} {
		_, err := DecodeAccessList([]byte(tc.payload))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want a fault in %s", tc.payload, err, tc.field)
		}
	}

	tm, err := DecodeTelemetry(KindLock, []byte(`{"door": "closed", "bolt": "locked",
		"mode": "normal", "allowlist_version": 1e1}`))
	if err != nil || tm.Lock.AllowlistVersion == nil || *tm.Lock.AllowlistVersion != 10 {
		t.Fatalf("lock telemetry %+v %v", tm.Lock, err)
	}
}
