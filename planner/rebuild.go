package planner

import (
	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// OfflineRebuild reports whether an offline job on the engine builds the
// table's replacement during the copy instead of adding ciphertext columns
// to it (dialect.Rebuilder: SQLite, PostgreSQL), which keeps the table
// read-only from prepare to cut-over. It does when the engine can, the
// table has a key to page by without an added row-id column, no column of
// that key is planned (the replacement is searched by it), no foreign key
// involves a planned column (the replacement would check it against the
// plaintext), and nothing is bound to the table itself that the swap could
// not take over (schema.Table.Unmovable). The migration engine decides by
// this function.
func OfflineRebuild(engine any, tbl *schema.Table, planned []string) bool {
	if _, ok := engine.(dialect.Rebuilder); !ok || len(tbl.Unmovable) > 0 {
		return false
	}
	if m, ok := engine.(dialect.Mover); ok {
		if _, mustAdd := m.RowID(); mustAdd && tbl.UsableKey() == nil {
			return false
		}
	}
	touches := func(cols []string) bool {
		for _, c := range cols {
			if schema.ContainsFold(planned, c) {
				return true
			}
		}
		return false
	}
	if touches(tbl.UsableKey()) {
		return false
	}
	for _, fk := range tbl.ForeignKeys {
		if touches(fk.Columns) || (schema.SameTable(fk.RefTable, tbl.Name) && touches(fk.RefColumns)) {
			return false
		}
	}
	for _, fk := range tbl.ReferencedBy {
		if touches(fk.RefColumns) {
			return false
		}
	}
	return true
}
