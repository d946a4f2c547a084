package schemas

// Kind is the kind of a device.
type Kind string

// The kinds of hardware a station carries.
const (
	KindLock    Kind = "lock"    // door terminal: face scan, NFC card, QR code
	KindAC      Kind = "ac"      // air conditioner
	KindCharger Kind = "charger" // power-bank and e-bike battery cabinet
	KindAED     Kind = "aed"     // defibrillator cabinet with a status sensor
)

// Kinds lists every kind.
var Kinds = []Kind{KindLock, KindAC, KindCharger, KindAED}

// Valid reports whether k is a kind of the contract.
func (k Kind) Valid() bool {
	switch k {
	case KindLock, KindAC, KindCharger, KindAED:
		return true
	}
	return false
}
