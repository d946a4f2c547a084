package controller

import (
	"fmt"
	"hash/fnv"
	"testing"
)

func TestParsePartition(t *testing.T) {
	for _, bad := range []string{"", "1", "0/2", "3/2", "1/0", "a/b", "1/2/3", "-1/2", "1/2000"} {
		if _, err := ParsePartition(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	p, err := ParsePartition(" 2/3 ")
	if err != nil || p != (Partition{Index: 2, Count: 3}) || p.String() != "2/3" {
		t.Fatalf("2/3: %+v %v", p, err)
	}
}

// TestStationPartitionIsFNV1a pins the function every controller and tool
// must agree on: FNV-1a 32-bit of the id, mod N, plus one.
func TestStationPartitionIsFNV1a(t *testing.T) {
	// Known FNV-1a 32-bit values.
	if h := fnv.New32a(); func() uint32 { h.Write([]byte("a")); return h.Sum32() }() != 0xe40c292c {
		t.Fatal("fnv-1a of \"a\" changed")
	}
	if got := StationPartition("a", 7); got != int(0xe40c292c%7)+1 {
		t.Fatalf("partition of a in 7: %d", got)
	}
	counts := make([]int, 4)
	for i := range 4000 {
		p := StationPartition(fmt.Sprintf("st-%05d", i), 4)
		if p < 1 || p > 4 {
			t.Fatalf("partition %d", p)
		}
		counts[p-1]++
	}
	for i, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("partition %d of 4 got %d of 4000 stations", i+1, n)
		}
	}
	all := Partition{}
	if !all.Owns("anything") || StationPartition("x", 1) != 1 {
		t.Fatal("the zero partition must own every station")
	}
	p := Partition{Index: StationPartition("ys-001", 3), Count: 3}
	if !p.Owns("ys-001") || p.Check("ys-001") != nil {
		t.Fatal("owner refused its station")
	}
	q := Partition{Index: p.Index%3 + 1, Count: 3}
	if q.Owns("ys-001") || q.Check("ys-001") == nil {
		t.Fatal("another partition took the station")
	}
}
