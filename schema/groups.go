package schema

import "strings"

// Components partitions the items 0..n-1 into the connected components of
// the pairs linked reports: each component lists its items in order, and
// the components come in the order of their first items, so the result is
// the same on every run.
func Components(n int, linked func(i, j int) bool) [][]int {
	parent := make([]int, n)
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		if parent[i] != i {
			parent[i] = find(parent[i])
		}
		return parent[i]
	}
	for i := range n {
		for j := range n {
			if i == j || !linked(i, j) {
				continue
			}
			ri, rj := find(i), find(j)
			if ri > rj {
				ri, rj = rj, ri
			}
			parent[rj] = ri // the root is always the earliest item
		}
	}
	var out [][]int
	at := map[int]int{} // root → index in out
	for i := range n {
		r := find(i)
		g, ok := at[r]
		if !ok {
			g = len(out)
			at[r] = g
			out = append(out, nil)
		}
		out[g] = append(out[g], i)
	}
	return out
}

// SameTable reports whether two names denote one table: names compare
// without regard to case, and a name without a schema matches any schema.
func SameTable(a, b TableName) bool {
	return strings.EqualFold(a.Name, b.Name) &&
		(a.Schema == "" || b.Schema == "" || strings.EqualFold(a.Schema, b.Schema))
}
