package kafka

import (
	"fmt"
	"testing"
)

func TestSplitBrokers(t *testing.T) {
	got := SplitBrokers(" a:1, ,b:2,")
	if len(got) != 2 || got[0] != "a:1" || got[1] != "b:2" {
		t.Fatalf("SplitBrokers = %q", got)
	}
}

// PartitionFor must be stable and spread rooms over the partitions. Its
// agreement with other Kafka clients' murmur2 partitioner is checked
// against a real client in the interop tests.
func TestPartitionFor(t *testing.T) {
	seen := map[int32]bool{}
	for i := range 100 {
		p := PartitionFor(fmt.Sprintf("room-%d", i), 3)
		if p < 0 || p >= 3 {
			t.Fatalf("partition %d out of range", p)
		}
		seen[p] = true
		if again := PartitionFor(fmt.Sprintf("room-%d", i), 3); again != p {
			t.Fatal("PartitionFor is not stable")
		}
	}
	if len(seen) != 3 {
		t.Fatalf("100 rooms used partitions %v of 3", seen)
	}
}
