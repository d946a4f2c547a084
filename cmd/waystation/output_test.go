package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/devices"
)

func TestDisplayWidth(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"ys-001", 6},
		{"颍上县", 6},
		{"城关 18 号", 10},
		{"ＡＢ", 4},      // full-width Latin
		{"e\u0301", 1}, // e and a combining accent
		{"24h", 3},
	}
	for _, tt := range tests {
		if got := displayWidth(tt.in); got != tt.want {
			t.Errorf("displayWidth(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestTableAlignsWideText(t *testing.T) {
	var buf bytes.Buffer
	p := &printer{out: &buf}
	err := p.table([][]string{
		{"ID", "NAME", "HOURS"},
		{"ys-001", "颍上县城关环卫驿站", "24h"},
		{"ys-002", "Shencheng", "06:00-23:00"},
		{"ys-003", "line\nbreak\x1b[31m", ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Nine Chinese characters take 18 columns, as "NAME" and 14 blanks do.
	want := "" +
		"ID      NAME                HOURS\n" +
		"ys-001  颍上县城关环卫驿站  24h\n" +
		"ys-002  Shencheng           06:00-23:00\n" +
		"ys-003  line break [31m\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestOutputFormatFlag(t *testing.T) {
	var f outputFormat
	for _, s := range []string{"table", "json", "JSON"} {
		if err := f.Set(s); err != nil || string(f) != strings.ToLower(s) {
			t.Errorf("Set(%q): %v, %q", s, err, f)
		}
	}
	for _, s := range []string{"", "yaml", "wide"} {
		if err := f.Set(s); err == nil {
			t.Errorf("Set(%q) accepted", s)
		}
	}
}

func TestWriteJSONKeepsTheAnswer(t *testing.T) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, []byte(`{"z":1,"a":[1,2],"名":"驿站"}`+"\n\n")); err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"z\": 1,\n  \"a\": [\n    1,\n    2\n  ],\n  \"名\": \"驿站\"\n}\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
	if err := writeJSON(&buf, []byte("<html>")); err == nil {
		t.Error("accepted an answer that is not JSON")
	}
}

func TestPrinterTimes(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600)
	now := time.Date(2025, 7, 17, 4, 30, 0, 0, time.UTC)
	p := &printer{loc: shanghai, now: func() time.Time { return now }}

	if got := p.when(time.Time{}); got != "-" {
		t.Errorf("zero time: %q", got)
	}
	if got, want := p.when(now), "2025-07-17 12:30:00 +08:00"; got != want {
		t.Errorf("when: %q, want %q", got, want)
	}
	got, want := p.whenAgo(now.Add(-90*time.Second)), "2025-07-17 12:28:30 +08:00 (1m30s ago)"
	if got != want {
		t.Errorf("whenAgo: %q, want %q", got, want)
	}
	if got, want := p.whenAgo(now.Add(2*time.Second)), "2025-07-17 12:30:02 +08:00 (in 2s)"; got != want {
		t.Errorf("whenAgo ahead: %q, want %q", got, want)
	}
}

func TestTwinWords(t *testing.T) {
	seen := time.Date(2025, 7, 17, 4, 30, 0, 0, time.UTC)
	for _, tt := range []struct {
		tw   *devices.Twin
		want string
	}{
		{nil, "never seen"},
		{&devices.Twin{}, "never seen"},
		{&devices.Twin{Online: true, LastSeen: seen}, "yes"},
		{&devices.Twin{LastSeen: seen}, "no"},
	} {
		if got := presence(tt.tw); got != tt.want {
			t.Errorf("presence(%+v) = %q, want %q", tt.tw, got, tt.want)
		}
	}
	for ms, want := range map[int64]string{0: "0s", 1500: "+1.5s (device ahead)",
		-120000: "-2m0s (device behind)"} {
		if got := skew(ms); got != want {
			t.Errorf("skew(%d) = %q, want %q", ms, got, want)
		}
	}
	for s, want := range map[int]string{0: "-", 30: "30s", 300: "5m0s"} {
		if got := seconds(s); got != want {
			t.Errorf("seconds(%d) = %q, want %q", s, got, want)
		}
	}
}
