package simulators

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/waystation/waystation/schemas"
)

// CountyStation is one station of a simulated county, with the devices it
// carries.
type CountyStation struct {
	ID, Name, Address string
	Lat, Lon          float64
	Org               string // partner organisation that hosts it
	Hours             string // "24h" or "HH:MM-HH:MM"
	Devices           []CountyDevice
}

// CountyDevice is one device of a simulated station.
type CountyDevice struct {
	ID    string
	Kind  schemas.Kind
	Model string
}

// County centre: Yingshang county seat, Fuyang, Anhui.
const (
	CountyLat = 32.63
	CountyLon = 116.27
)

// partners host or fund stations; the names are invented.
var partners = []string{
	"county-union", "sanitation-bureau", "rural-credit-coop", "post-office", "fuel-east",
	"fuel-west", "bus-company", "rider-platform-a", "rider-platform-b", "community-north",
	"community-south", "community-east", "community-west", "agri-bank-branch", "grid-supply",
	"water-works", "park-service", "hospital-county", "market-central", "logistics-park",
	"volunteer-assoc",
}

var places = []string{
	"Renmin Rd", "Yingzhou Ave", "Jiefang Rd", "Huaihe Rd", "Guanyin Rd", "Xinhua St",
	"Wenfeng Rd", "Binhe Rd", "Dongcheng Rd", "Xicheng Rd", "Chengnan Ave", "Changjiang Rd",
	"Gucheng Rd", "Zhenxing Rd", "Yingxi Rd", "Jiankang Rd", "Bafang Rd", "Tongda Rd",
}

var towns = []string{
	"Shencheng", "Jiangdian", "Yangqiao", "Banqiao", "Runhe", "Xinji", "Jiekou",
	"Liushipu", "Baliuhe", "Wanggang", "Xiedian", "Guanliang", "Huangba", "Nanzhao",
}

// County returns n stations around the county seat, the same for the same
// seed. Ids run ys-001, ys-002, …; every station has a door terminal and an
// AC, about a third a charger cabinet and about a third an AED.
func County(n int, seed int64) []CountyStation {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	out := make([]CountyStation, 0, n)
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("ys-%03d", i)

		// Most stations sit in the county seat, the rest in the towns
		// around it, up to about 25 km out.
		r := 3.0 * math.Sqrt(rng.Float64())
		if rng.IntN(3) == 0 {
			r = 5 + 20*rng.Float64()
		}
		a := 2 * math.Pi * rng.Float64()
		lat := CountyLat + r*math.Sin(a)/111.0
		lon := CountyLon + r*math.Cos(a)/(111.0*math.Cos(CountyLat*math.Pi/180))

		place := places[rng.IntN(len(places))]
		name := fmt.Sprintf("%s Rest Station %d", place, i)
		addr := fmt.Sprintf("%d %s, Yingshang", 1+rng.IntN(400), place)
		if r > 5 {
			town := towns[rng.IntN(len(towns))]
			name = fmt.Sprintf("%s Town Rest Station %d", town, i)
			addr = fmt.Sprintf("%s Town, Yingshang", town)
		}

		hours := "24h"
		switch {
		case i <= 2: // the two 24-hour smart stations stay 24h
		case rng.IntN(3) == 0:
			hours = "06:00-22:00"
		case rng.IntN(4) == 0:
			hours = "05:00-20:00"
		}

		st := CountyStation{
			ID: id, Name: name, Address: addr,
			Lat: math.Round(lat*1e5) / 1e5, Lon: math.Round(lon*1e5) / 1e5,
			Org: partners[(i-1)%len(partners)], Hours: hours,
			Devices: []CountyDevice{
				{ID: id + "-lock", Kind: schemas.KindLock, Model: "DT-300"},
				{ID: id + "-ac", Kind: schemas.KindAC, Model: "KFR-35GW"},
			},
		}
		if i%3 == 1 {
			st.Devices = append(st.Devices, CountyDevice{ID: id + "-chg", Kind: schemas.KindCharger,
				Model: "BC-12"})
		}
		if i%3 == 2 || i <= 2 {
			st.Devices = append(st.Devices, CountyDevice{ID: id + "-aed", Kind: schemas.KindAED,
				Model: "AED-CAB-2"})
		}
		out = append(out, st)
	}
	return out
}
