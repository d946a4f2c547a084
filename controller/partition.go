package controller

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Partition is the share of the stations one controller owns when several
// share an external broker (serve --partition I/N). Station s belongs to
// partition
//
//	FNV-1a 32-bit hash of the station id's bytes, mod N, plus 1
//
// which depends on nothing but the id and N, so every controller, every
// tool and every restart agree. Changing N moves stations between
// partitions (about (N-1)/N of them); see the README for how to do it.
//
// The zero Partition owns every station.
type Partition struct {
	Index int // 1..Count
	Count int
}

// MaxPartitions bounds N.
const MaxPartitions = 1024

// ParsePartition parses "I/N" with 1 <= I <= N.
func ParsePartition(s string) (Partition, error) {
	i, n, ok := strings.Cut(strings.TrimSpace(s), "/")
	a, err1 := strconv.Atoi(i)
	b, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil || b < 1 || b > MaxPartitions || a < 1 || a > b {
		return Partition{}, fmt.Errorf("partition %q: want I/N with 1 <= I <= N <= %d, e.g. 1/4",
			s, MaxPartitions)
	}
	return Partition{Index: a, Count: b}, nil
}

// StationPartition returns the partition (1..count) station belongs to.
func StationPartition(station string, count int) int {
	if count <= 1 {
		return 1
	}
	h := fnv.New32a()
	h.Write([]byte(station))
	return int(h.Sum32()%uint32(count)) + 1
}

// On reports whether p is a real split (more than one partition).
func (p Partition) On() bool { return p.Count > 1 }

// Owns reports whether station belongs to p.
func (p Partition) Owns(station string) bool {
	return !p.On() || StationPartition(station, p.Count) == p.Index
}

// Check returns nil if p owns station, else an error naming its partition.
func (p Partition) Check(station string) error {
	if p.Owns(station) {
		return nil
	}
	return fmt.Errorf("it belongs to partition %d/%d and this controller is %s: register it there",
		StationPartition(station, p.Count), p.Count, p)
}

// String returns "I/N", or "all" for the zero Partition.
func (p Partition) String() string {
	if !p.On() {
		return "all"
	}
	return fmt.Sprintf("%d/%d", p.Index, p.Count)
}
