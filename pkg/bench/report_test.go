package bench

import "testing"

func TestQuantity(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		unit string
		want string
	}{
		{0.4567, "ms", "0.4567 ms"},
		{39.58, "KiB", "39.58 KiB"},
		{5600, "msg/s", "5600 msg/s"},
		{14921, "msg/s", "14,920 msg/s"},
		{1.2034e6, "msg/s", "1,203,000 msg/s"},
		{-25000, "", "-25,000"},
		{100, "%", "100 %"},
		{4, "", "4"},
	} {
		if got := quantity(tc.v, tc.unit); got != tc.want {
			t.Errorf("quantity(%v, %q) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
	}
}
