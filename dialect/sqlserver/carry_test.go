package sqlserver

import (
	"fmt"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// TestSwapCarriesColumnMetadata: every swap, both ways, saves the extended
// properties and permissions of exactly the columns it replaces before it
// drops or moves any of them, and gives them to the columns that take the
// names once every rename is done, on the right table.
func TestSwapCarriesColumnMetadata(t *testing.T) {
	for name, group := range swapFixtures() {
		for _, pendingOf := range []func([]dialect.TableSwap) [][]dialect.SwapColumn{allPending, firstPending} {
			pending := pendingOf(group)
			steps := stepsFor(t, name, group, pending)
			for i, ts := range group {
				tn := withDefaultSchema(ts.Table.Name)
				t.Run(fmt.Sprintf("%s/%s/%d pending", name, tn.Name, len(pending[i])), func(t *testing.T) {
					save, restore := carrySteps(t, steps, tn)
					if len(pending[i]) == 0 {
						if save >= 0 || restore >= 0 {
							t.Errorf("nothing pending, yet steps %d and %d carry metadata", save, restore)
						}
						return
					}
					if save < 0 || restore < 0 {
						t.Fatalf("no save (%d) or no restore (%d) of the columns' metadata", save, restore)
					}
					var want []string
					for _, sc := range pending[i] {
						want = append(want, nstr(sc.Name))
					}
					if got := inList(steps[save].sql); got != strings.Join(want, ", ") {
						t.Errorf("saves the metadata of (%s), want (%s)", got, strings.Join(want, ", "))
					}
					if !strings.Contains(steps[save].sql, "OBJECT_ID("+nstr(quoteTable(tn))+", N'U')") {
						t.Errorf("save does not read table %s:\n%s", tn, steps[save].sql)
					}
					for _, frag := range []string{"@level0name = " + nstr(tn.Schema), "@level1name = " + nstr(tn.Name), "N') ON ' + " + nstr(quoteTable(tn))} {
						if !strings.Contains(steps[restore].sql, frag) {
							t.Errorf("restore lacks %s:\n%s", frag, steps[restore].sql)
						}
					}
					qt := quoteTable(tn)
					// sp_rename names a column of the table as N'[schema].[table].[column]'.
					renames := "EXEC sp_rename N'" + strings.ReplaceAll(qt+".", "'", "''")
					for k, s := range steps {
						renamed := strings.HasPrefix(s.sql, renames)
						if (renamed || strings.Contains(s.sql, "ALTER TABLE "+qt+" DROP COLUMN ")) && k < save {
							t.Errorf("step %d %q drops or renames a column before its metadata is saved (step %d)", k, s.what, save)
						}
						if renamed && k > restore {
							t.Errorf("step %d %q renames a column after the metadata was given back (step %d)", k, s.what, restore)
						}
					}
				})
			}
		}
	}
}

// firstPending leaves only the first column of each table pending, as a
// swap run again after another one moved the rest would.
func firstPending(group []dialect.TableSwap) [][]dialect.SwapColumn {
	out := make([][]dialect.SwapColumn, len(group))
	for i, ts := range group {
		out[i] = ts.Columns[:1]
	}
	return out
}

// carrySteps finds the table's save and restore steps, -1 when absent; a
// second one of either is an error.
func carrySteps(t *testing.T, steps []step, tn schema.TableName) (save, restore int) {
	t.Helper()
	save, restore = -1, -1
	for k, s := range steps {
		for _, c := range []struct {
			what string
			at   *int
		}{{saveColumnMetadataStep(tn, nil).what, &save}, {restoreColumnMetadataStep(tn).what, &restore}} {
			if s.what != c.what {
				continue
			}
			if *c.at >= 0 {
				t.Errorf("%q twice: steps %d and %d", s.what, *c.at, k)
			}
			*c.at = k
		}
	}
	return save, restore
}

// inList is what the save's column filter lists.
func inList(sql string) string {
	_, rest, ok := strings.Cut(sql, "c.name IN (")
	if !ok {
		return ""
	}
	list, _, _ := strings.Cut(rest, ")")
	return list
}

// TestServerScenariosAreTSQL puts the SQL of the live SQL Server tests
// through the grammar, so that a scenario fails here, not only where a
// server runs.
func TestServerScenariosAreTSQL(t *testing.T) {
	for _, sc := range moverScenarios() {
		for i, stmt := range sc.ddl {
			// The grammar has no DENY statement; its syntax is GRANT's.
			if rest, ok := strings.CutPrefix(stmt, "DENY "); ok {
				stmt = "GRANT " + rest
			}
			requireTSQL(t, fmt.Sprintf("%s: statement %d", sc.name, i+1), stmt)
		}
	}
	requireTSQL(t, "column metadata query", columnMetadataQuery)
	requireTSQL(t, "classifications query", classificationsQuery)
	// The statements the swap's restore builds and runs with
	// sp_executesql, as it builds them for one permission of each kind.
	// (ADD SENSITIVITY CLASSIFICATION, which it builds too, is not in the
	// grammar; the live test runs it.)
	requireTSQL(t, "saved classifications", saveClassificationsSQL)
	requireTSQL(t, "granted permissions", "GRANT SELECT ([email]) ON [dbo].[cm_customers] TO [cm_reader] WITH GRANT OPTION; "+
		"GRANT UPDATE ([we]]ird 'col]) ON [dbo].[cm odd \"name\" [x]]-y] TO [public]; ")
}
