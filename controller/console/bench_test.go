package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

// BenchmarkPages draws the map, the list, the board and a station page of a
// county of 129 stations with three devices each, as an admin sees them.
func BenchmarkPages(b *testing.B) {
	r := newRig(b)
	for i := 4; i <= 129; i++ {
		id := fmt.Sprintf("ys-%03d", i)
		if _, err := r.reg.AddStation(devices.Station{ID: id, Name: "Station " + id,
			Lat: 32.5 + float64(i%17)/50, Lon: 116.1 + float64(i%23)/50, Org: "county-union",
			Hours: "24h"}); err != nil {
			b.Fatal(err)
		}
	}
	var list []devices.Device
	for i := 4; i <= 129; i++ {
		for _, k := range []schemas.Kind{schemas.KindAC, schemas.KindLock, schemas.KindAED} {
			list = append(list, devices.Device{ID: fmt.Sprintf("ys-%03d-%s", i, k),
				Station: fmt.Sprintf("ys-%03d", i), Kind: k})
		}
	}
	if _, err := r.reg.Provision(list); err != nil {
		b.Fatal(err)
	}
	token := r.operator(b, "chief", controller.RoleAdmin, "*")
	value, _, _, err := r.sessions.SignIn(token)
	if err != nil {
		b.Fatal(err)
	}
	for _, page := range []struct{ name, path string }{{"board", "/"}, {"map", "/map"},
		{"list", "/list"}, {"station", "/stations/ys-050"}} {
		path := page.path
		b.Run(page.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", path, nil)
			req.AddCookie(&http.Cookie{Name: controller.SessionCookie, Value: value})
			for b.Loop() {
				w := httptest.NewRecorder()
				r.con.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("%s: %d", path, w.Code)
				}
			}
		})
	}
}
