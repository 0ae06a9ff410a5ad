package schema

import (
	"fmt"
	"testing"
)

func TestComponents(t *testing.T) {
	// 0–3 and 3–5 link (through either direction), 2 links to itself, 1
	// and 4 link to nothing.
	edges := map[[2]int]bool{{3, 0}: true, {3, 5}: true, {2, 2}: true}
	got := Components(6, func(i, j int) bool { return edges[[2]int{i, j}] })
	if fmt.Sprint(got) != "[[0 3 5] [1] [2] [4]]" {
		t.Errorf("Components = %v, want [[0 3 5] [1] [2] [4]]", got)
	}
	if got := Components(0, nil); len(got) != 0 {
		t.Errorf("Components of nothing = %v", got)
	}
}

func TestSameTable(t *testing.T) {
	for _, c := range []struct {
		a, b TableName
		want bool
	}{
		{TableName{"public", "Orders"}, TableName{"PUBLIC", "orders"}, true},
		{TableName{"", "orders"}, TableName{"sales", "orders"}, true},
		{TableName{"crm", "orders"}, TableName{"sales", "orders"}, false},
		{TableName{"sales", "orders"}, TableName{"sales", "order"}, false},
	} {
		if got := SameTable(c.a, c.b); got != c.want {
			t.Errorf("SameTable(%v, %v) = %t, want %t", c.a, c.b, got, c.want)
		}
	}
}
