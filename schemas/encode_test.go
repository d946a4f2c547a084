package schemas

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// AppendState writes the bytes json.Marshal writes, for every kind, on
// random states with awkward numbers and strings, and on every valid
// example telemetry.
func TestAppendStateIsJSONMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 26, 28.4, 1e-6, 9.99e-7, 1e-7, 1e20,
		1e21, -1e21, 123456789.125, 999999999.9999, 1e9, -999999999.5, 0.00005, 28.45, 0.3,
		1.7976931348623157e308, 5e-324, 100000, 0.000001234}
	num := func() float64 {
		switch rng.IntN(4) {
		case 0:
			return floats[rng.IntN(len(floats))]
		case 1: // a reading: a short decimal
			return float64(rng.Int64N(4e9)-2e9) / math.Pow(10, float64(rng.IntN(7)))
		}
		return (rng.Float64() - 0.5) * math.Pow(10, float64(rng.IntN(40)-15))
	}
	opt := func() *float64 {
		if rng.IntN(3) == 0 {
			return nil
		}
		v := num()
		return &v
	}
	strs := []string{"", "cool", "E4", "a<b", "x&y", `q"uote`, `back\slash`, "tab\there", "é", "\u2028",
		"\xff", "ok.code-1_2"}
	str := func() string { return strs[rng.IntN(len(strs))] }
	for i := range 20000 {
		var tm Telemetry
		switch i % 5 {
		case 0:
			tm = Telemetry{Kind: KindAC, AC: &ACState{Power: rng.IntN(2) == 0, Mode: str(),
				SetpointC: num(), RoomC: num(), OutdoorC: opt(), HumidityPct: opt(), PowerW: opt(),
				Fault: str()}}
		case 1:
			l := &LockState{Door: str(), Bolt: str(), Mode: str(), BatteryPct: opt(),
				Tamper: rng.IntN(2) == 0}
			if rng.IntN(2) == 0 {
				n := rng.IntN(2000) - 1000
				l.Occupancy = &n
			}
			if rng.IntN(2) == 0 {
				v := rng.Int64N(MaxSafeInt)
				l.AllowlistVersion = &v
			}
			tm = Telemetry{Kind: KindLock, Lock: l}
		case 2:
			c := &ChargerState{CabinetC: opt(), Smoke: rng.IntN(2) == 0, Mains: rng.IntN(2) == 0}
			switch rng.IntN(4) {
			case 0: // nil slots
			case 1:
				c.Slots = []Slot{}
			default:
				for j := range rng.IntN(5) + 1 {
					c.Slots = append(c.Slots, Slot{Slot: j + 1, State: str(), SocPct: opt(),
						TempC: opt()})
				}
			}
			tm = Telemetry{Kind: KindCharger, Charger: c}
		case 3:
			a := &AEDState{Ready: rng.IntN(2) == 0, SelfTest: str(), BatteryPct: num(),
				PadsExpire: str(), CabinetOpen: rng.IntN(2) == 0, CabinetC: opt()}
			if rng.IntN(2) == 0 {
				a.SelfTestAt = rng.Int64N(MaxSafeInt)
			}
			tm = Telemetry{Kind: KindAED, AED: a}
		case 4: // no state, or an unknown kind
			tm = []Telemetry{{Kind: KindAC}, {Kind: KindLock}, {Kind: KindCharger}, {Kind: KindAED},
				{Kind: "x"}}[rng.IntN(5)]
		}
		checkAppendState(t, tm)
	}

	for _, ex := range examples(t) {
		if !ex.valid || !strings.HasPrefix(ex.name, "telemetry-") {
			continue
		}
		k := Kind(strings.TrimPrefix(ex.name, "telemetry-"))
		tm, err := DecodeTelemetry(k, ex.data)
		if err != nil {
			t.Fatalf("%s: %v", ex.path, err)
		}
		checkAppendState(t, tm)
	}
}

func checkAppendState(t *testing.T, tm Telemetry) {
	t.Helper()
	want, err := json.Marshal(tm.State())
	if err != nil {
		t.Fatal(err)
	}
	got, err := tm.AppendState([]byte("prefix"))
	if err != nil || string(got) != "prefix"+string(want) {
		t.Fatalf("AppendState of %+v:\n got %s (%v)\nwant prefix%s", tm.State(), got, err, want)
	}
}

// Numbers json.Marshal refuses are refused, and nothing is appended.
func TestAppendStateRefusesNaN(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		v := f
		for _, tm := range []Telemetry{
			{Kind: KindAC, AC: &ACState{Mode: "cool", RoomC: f}},
			{Kind: KindAC, AC: &ACState{Mode: "cool", PowerW: &v}},
			{Kind: KindCharger, Charger: &ChargerState{Slots: []Slot{{Slot: 1, TempC: &v}}}},
			{Kind: KindAED, AED: &AEDState{BatteryPct: f}},
			{Kind: KindLock, Lock: &LockState{BatteryPct: &v}},
		} {
			if _, err := json.Marshal(tm.State()); err == nil {
				t.Fatalf("json.Marshal took %v", f)
			}
			got, err := tm.AppendState([]byte("x"))
			if err == nil || string(got) != "x" {
				t.Fatalf("AppendState(%v) = %q, %v", f, got, err)
			}
		}
	}
}

func BenchmarkAppendState(b *testing.B) {
	tm, err := DecodeTelemetry(KindAC, []byte(`{"power":true,"mode":"cool","setpoint_c":26,`+
		`"room_c":28.4,"outdoor_c":35.1,"humidity_pct":71,"power_w":1150,"ts":1784000000000,"seq":1}`))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 256)
		for b.Loop() {
			buf, _ = tm.AppendState(buf[:0])
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(tm.State())
		}
	})
}

// A field added to a state must be added to its encoder too: this lists
// the fields each encoder writes, and fails when a state has others.
func TestAppendStateKnowsEveryField(t *testing.T) {
	encoded := map[reflect.Type][]string{
		reflect.TypeFor[ACState]():      {"Power", "Mode", "SetpointC", "RoomC", "OutdoorC", "HumidityPct", "PowerW", "Fault"},
		reflect.TypeFor[LockState]():    {"Door", "Bolt", "Mode", "BatteryPct", "Tamper", "Occupancy", "AllowlistVersion"},
		reflect.TypeFor[ChargerState](): {"Slots", "CabinetC", "Smoke", "Mains"},
		reflect.TypeFor[Slot]():         {"Slot", "State", "SocPct", "TempC"},
		reflect.TypeFor[AEDState]():     {"Ready", "SelfTest", "SelfTestAt", "BatteryPct", "PadsExpire", "CabinetOpen", "CabinetC"},
	}
	for typ, names := range encoded {
		var fields []string
		for f := range typ.Fields() {
			fields = append(fields, f.Name)
		}
		if strings.Join(fields, ",") != strings.Join(names, ",") {
			t.Errorf("%s has fields %v; its encoder writes %v", typ.Name(), fields, names)
		}
	}
}
