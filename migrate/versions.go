package migrate

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/dialect"
)

// VersionCount is how many values of a column one key version protects.
type VersionCount struct {
	Suite   string `json:"suite"`
	Version int    `json:"key_version"`
	Values  int64  `json:"values"`
}

// keyVersionCounts counts, per encrypted column, the values under each
// suite and key version, reading only the 3-byte versioned headers with an
// aggregate query in the database. Columns that are not versioned, or
// engines that cannot slice bytes in SQL, are left out.
func (e *Engine) keyVersionCounts(ctx context.Context) (map[string][]VersionCount, error) {
	sl, ok := e.d.(dialect.Slicer)
	if !ok {
		return nil, nil
	}
	all, err := e.loadStates(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]VersionCount{}
	for _, tp := range e.plan.Tables {
		tn := e.tableName(tp.Name)
		for _, cp := range tp.Columns {
			st := all[stateKey(tn.String(), cp.Name)]
			if st == nil || !st.Versioned || (st.State != StateEncrypted && st.State != StateKeyChange) {
				continue
			}
			col := e.d.Quote(st.Column)
			head := sl.Substr(col, 1, cipher.HeaderLen)
			rows, err := e.db.QueryContext(ctx, "SELECT "+head+", COUNT(*) FROM "+e.d.QuoteTable(tn)+
				" WHERE "+col+" IS NOT NULL GROUP BY "+head)
			if err != nil {
				return nil, fmt.Errorf("count key versions of %s.%s: %w", tn, st.Column, err)
			}
			var counts []VersionCount
			for rows.Next() {
				var h []byte
				var n int64
				if err := rows.Scan(&h, &n); err != nil {
					rows.Close()
					return nil, err
				}
				suite, v, err := cipher.Header(h)
				if err != nil {
					counts = append(counts, VersionCount{Suite: "unreadable header", Values: n})
					continue
				}
				counts = append(counts, VersionCount{Suite: string(suite), Version: int(v), Values: n})
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, err
			}
			out[stateKey(tn.String(), st.Column)] = counts
		}
	}
	return out, nil
}

// VersionUse is a column that still holds values under a key version.
type VersionUse struct {
	Column string // table.column
	Detail string // how many values, or the column's state
	// Versioned: its values carry their key version, so a rekey can move
	// them; an unversioned column must be reverted and applied again.
	Versioned bool
}

func (u VersionUse) String() string { return u.Column + " (" + u.Detail + ")" }

// VersionInUse reports the columns of the plan that still hold values
// under key name/version, with their counts: a version in use must not be
// retired.
func (e *Engine) VersionInUse(ctx context.Context, name string, version int) ([]VersionUse, error) {
	all, err := e.loadStates(ctx)
	if err != nil {
		return nil, err
	}
	counts, err := e.keyVersionCounts(ctx)
	if err != nil {
		return nil, err
	}
	var uses []VersionUse
	for k, st := range all {
		if st.KeyName != name || (st.State != StateEncrypted && st.State != StateKeyChange && st.State != StateEncrypting && st.State != StateDecrypting) {
			continue
		}
		var n int64
		found := false
		for _, c := range counts[k] {
			if c.Version == version {
				n, found = c.Values, true
			}
		}
		column := st.Table + "." + st.Column
		switch {
		case found && n > 0:
			uses = append(uses, VersionUse{Column: column, Detail: fmt.Sprintf("%d values", n), Versioned: true})
		case counts[k] == nil && st.KeyVersion == version:
			// Unversioned or uncountable: the recorded version decides.
			uses = append(uses, VersionUse{Column: column, Detail: "state " + StateDesc(st.State), Versioned: st.Versioned})
		}
	}
	slices.SortFunc(uses, func(a, b VersionUse) int { return strings.Compare(a.Column, b.Column) })
	return uses, nil
}

func formatCounts(counts []VersionCount) string {
	var parts []string
	for _, c := range counts {
		parts = append(parts, fmt.Sprintf("v%d: %d", c.Version, c.Values))
	}
	return strings.Join(parts, ", ")
}
