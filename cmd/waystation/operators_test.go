package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
)

func TestOperatorsCLI(t *testing.T) {
	f := newAPIFixture(t)
	for _, st := range []devices.Station{
		{ID: "ys-a", Name: "A", Lat: 32.6, Lon: 116.2, Org: "工商银行", Hours: "24h"},
		{ID: "ys-b", Name: "B", Lat: 32.6, Lon: 116.2, Org: "org-b", Hours: "24h"},
	} {
		if _, err := f.reg.AddStation(st); err != nil {
			t.Fatal(err)
		}
	}

	// add prints the token once, with a note to keep it.
	out, _, err := runClient(f.args("operators", "add", "--name", "bank-desk", "--role", "monitor",
		"--org", "工商银行")...)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`token: (wst_\S+)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "monitor of 工商银行") || !strings.Contains(out, "hash") {
		t.Fatalf("add printed:\n%s", out)
	}
	bankToken := m[1]

	// The new token sees its own station only, and may not register.
	out, _, err = runClient("stations", "list", "-o", "json", "--server", f.url, "--token", bankToken)
	if err != nil || !strings.Contains(out, `"ys-a"`) || strings.Contains(out, `"ys-b"`) {
		t.Fatalf("%v\n%s", err, out)
	}
	_, _, err = runClient("devices", "add", "--station", "ys-a", "--kind", "ac", "--id", "ys-a-ac",
		"--server", f.url, "--token", bankToken)
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || !strings.Contains(err.Error(),
		"technician") {
		t.Fatalf("monitor registered a device: %v", err)
	}

	// -o json: one JSON document on stdout, the note on stderr.
	out, errOut, err := runClient(f.args("operators", "add", "--name", "all-tech", "--role",
		"technician", "--org", "*", "-o", "json")...)
	var added controller.NewOperator
	if err != nil || json.Unmarshal([]byte(out), &added) != nil || added.Token == "" ||
		!added.AllOrgs() || !strings.Contains(errOut, "Keep this token") {
		t.Fatalf("%v\n%s\n%s", err, out, errOut)
	}

	out, _, err = runClient(f.args("operators", "list")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"admin", "bank-desk", "all-tech", "every organisation", "工商银行"} {
		if !strings.Contains(out, want) {
			t.Fatalf("list lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, bankToken) {
		t.Fatal("list shows a token")
	}

	out, _, err = runClient(f.args("operators", "revoke", "bank-desk")...)
	if err != nil || !strings.Contains(out, "revoked operator bank-desk") {
		t.Fatalf("%v\n%s", err, out)
	}
	_, _, err = runClient("stations", "list", "--server", f.url, "--token", bankToken)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("revoked token: %v", err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"operators", "add", "--name", "x", "--role", "boss", "--org", "*"}, "--role"},
		{[]string{"operators", "add", "--name", "x", "--role", "admin", "--org", " , "}, "--org"},
		{[]string{"operators", "revoke", "admin"}, "cannot be revoked"},
		{[]string{"operators", "revoke", "nobody"}, "no such operator"},
		{[]string{"operators", "revoke", "../stations"}, "operator name"},
	} {
		_, _, err := runClient(f.args(tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
