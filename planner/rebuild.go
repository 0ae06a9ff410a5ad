package planner

import (
	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// OfflineRebuild reports whether an offline job on the engine builds the
// table's replacement during the copy instead of adding ciphertext columns
// to it (dialect.Rebuilder: SQLite), which keeps the table read-only from
// prepare to cut-over. It does when the engine can, no column of the key
// that pages the table is planned (the replacement is searched by it), and
// no foreign key involves a planned column (the replacement would check it
// against the plaintext). The migration engine decides by this function.
func OfflineRebuild(engine any, tbl *schema.Table, planned []string) bool {
	if _, ok := engine.(dialect.Rebuilder); !ok {
		return false
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
